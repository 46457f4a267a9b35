# ATSS, ResNet-50 FPN, the 1x COCO schedule (12 epochs, steps at 8 and 11), batch 16 in total.
_base_ = [
    "../_base_/models/atss_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(num_classes=80),
)
# Like the other focal-loss detectors: half the two-stage LR.
optimizer = dict(lr=0.01)
