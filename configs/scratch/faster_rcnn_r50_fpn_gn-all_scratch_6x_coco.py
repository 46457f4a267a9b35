# Faster R-CNN, ResNet-50 FPN trained from scratch ("Rethinking ImageNet Pre-training", He et
# al., 2019): no pretrained weights, GroupNorm everywhere and nothing frozen, the 6x schedule
# (73 epochs, LR steps at 65 and 71). Batch 16 in total (2 images x 8 GPUs).
# Published: 40.7 box AP (MMDetection's scratch zoo).
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# Random init: every stage trains (frozen_stages=-1), GN in the backbone, FPN and a 4conv1fc
# box head, no weight decay on the norms. No init_cfg: nothing is loaded.
model = dict(
    backbone=dict(frozen_stages=-1, norm="GN", norm_eval=False),
    neck=dict(norm="GN"),
    roi_head=dict(bbox_head=dict(type="ConvFCBBoxHead", num_convs=4, num_fcs=1, norm="GN")),
)
optimizer = dict(norm_decay_mult=0.0)
lr_schedule = dict(milestones=[65, 71], warmup_ratio=0.1)
train_cfg = dict(max_epochs=73)
