# RepPoints (moment), ResNet-50 FPN with group norm in the neck and the head's towers, 1x COCO.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="RepPointsDetector",
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    neck=dict(norm="GN"),
    bbox_head=dict(type="RepPointsHead", num_classes=80, norm="GN"),
)

optimizer = dict(lr=0.01)
