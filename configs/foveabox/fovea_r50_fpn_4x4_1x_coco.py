# FoveaBox, ResNet-50 FPN, the 1x COCO schedule with 4 images on each of 4 GPUs (batch 16).
_base_ = [
    "../_base_/models/fovea_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(num_classes=80),
)
train_dataloader = dict(batch_size=4)
optimizer = dict(lr=0.01)
