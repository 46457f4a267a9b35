# Cascade Mask R-CNN, ResNeXt-101 32x4d FPN, the standard 1x COCO schedule (12 epochs, steps
# at 8 and 11). Batch 16 in total (2 images x 8 GPUs); with another total batch,
# --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/cascade_mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# ResNeXt-101 32x4d (the ResNeXt defaults: 32 groups of width 4), frozen stem and stage 1,
# FrozenBN, as the R-50 recipes. torchvision publishes no ImageNet weights for this variant: put a
# state dict in torchvision's layout at this path (docs/model_zoo.md), or point the key elsewhere.
model = dict(backbone=dict(type="ResNeXt", depth=101),
             init_cfg=dict(backbone_checkpoint="checkpoints/resnext101_32x4d.pth"))
