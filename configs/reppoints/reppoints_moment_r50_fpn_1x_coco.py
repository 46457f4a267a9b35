# RepPoints (Yang et al., 2019): 9-point sets refined in two stages, converted to boxes by their
# moments with a learned transfer. ResNet-50 FPN (P3-P7), 1x COCO schedule; the head's defaults
# are the paper's (point assigner then IoU assigner, smooth L1 0.5 / 1.0, focal loss).
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="RepPointsDetector",
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(type="RepPointsHead", num_classes=80),
)

optimizer = dict(lr=0.01)
