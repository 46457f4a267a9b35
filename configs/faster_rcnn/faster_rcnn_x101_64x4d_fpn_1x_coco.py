# Faster R-CNN, ResNeXt-101 64x4d FPN, the standard 1x COCO schedule (12 epochs, steps at 8 and 11).
# Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# ResNeXt-101 64x4d, frozen stem and stage 1, FrozenBN, as the R-50 recipes; torchvision's
# ImageNet weights, cached by torch.hub.
model = dict(backbone=dict(type="ResNeXt", depth=101, groups=64),
             init_cfg=dict(backbone_checkpoint="torchvision://resnext101_64x4d"))
