# FreeAnchor (Zhang et al., 2019): RetinaNet whose anchors are matched to objects by maximum
# likelihood over bags of 50 anchors instead of IoU thresholds. ResNet-50 FPN, 1x COCO schedule.
# The head's defaults are the paper's (bags of 50, bbox_thr 0.6, gamma 2, alpha 0.5, smooth L1
# beta 0.11 weighted 0.75 on deltas with stds 0.1 / 0.2).
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(type="FreeAnchorRetinaHead", num_classes=80),
)

optimizer = dict(lr=0.01)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
