# Faster R-CNN, ResNet-50 with a PAFPN neck (PANet's bottom-up path augmentation after the FPN),
# the standard 1x COCO schedule (12 epochs, steps at 8 and 11). Batch 16 in total (2 images x 8
# GPUs); with another total batch, --auto-scale-lr scales the lr.
# Published: 37.5 box AP (MMDetection's PAFPN recipe).
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    neck=dict(type="PAFPN"),
)
