# Cascade Mask R-CNN, ResNet-101 FPN, the standard 1x COCO schedule (12 epochs, steps at 8 and 11).
# Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/cascade_mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# ImageNet weights for the backbone (frozen stem and stage 1, FrozenBN), cached by torch.hub.
model = dict(backbone=dict(depth=101),
             init_cfg=dict(backbone_checkpoint="torchvision://resnet101"))
