# Faster R-CNN R18-FPN on the microcontroller boards from an ImageNet ResNet-18 in a 20-minute CPU
# budget: the pretrained stem and first stage frozen with frozen BN (the fine-tuning setup of the
# COCO recipes), a lower AdamW LR for the pretrained weights.
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small_data.py",
    "../_base_/datasets/microcontroller_detection.py",
    "../_base_/schedules/schedule_small_data_20min.py",
    "../_base_/default_runtime.py",
]
model = dict(
    backbone=dict(frozen_stages=1, norm="FrozenBN", norm_eval=True),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet18"),
)
optimizer = dict(lr=0.0002)
checkpoint = dict(interval=1000, max_keep=1)
log = dict(interval=25)
