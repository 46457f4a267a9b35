# HTC, ResNeXt-101 32x4d FPN, with the semantic branch trained on COCO-stuff's maps, the 20e
# schedule (20 epochs, steps at 16 and 19). Batch 16 as 16 GPUs x 1 image (the reference
# recipe's layout), at the lr of the R-50 recipes.
_base_ = [
    "../_base_/models/htc_r50_fpn.py",
    "../_base_/datasets/coco_instance_semantic.py",
    "../_base_/schedules/schedule_20e.py",
    "../_base_/default_runtime.py",
]

# ResNeXt-101 32x4d (the ResNeXt defaults: 32 groups of width 4), frozen stem and stage 1,
# FrozenBN, as the R-50 recipes. torchvision publishes no ImageNet weights for this variant: put a
# state dict in torchvision's layout at this path (docs/model_zoo.md), or point the key elsewhere.
model = dict(backbone=dict(type="ResNeXt", depth=101),
             init_cfg=dict(backbone_checkpoint="checkpoints/resnext101_32x4d.pth"))
train_dataloader = dict(batch_size=1)
