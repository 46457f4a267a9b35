# Faster R-CNN R50-FPN 1x with online hard example mining (Shrivastava et al., 2016): the RoI head
# scores all candidate RoIs with its box head (no gradient) and trains on the 512 with the
# highest loss (at most 25% positive) instead of a random 512.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    roi_head=dict(sampler=dict(type="OHEMSampler", num=512, pos_fraction=0.25,
                               add_gt_as_proposals=True)),
)
