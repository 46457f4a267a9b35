# HTC, ResNet-50 FPN, with the semantic branch trained on COCO-stuff's maps, the standard 1x
# COCO schedule (12 epochs, steps at 8 and 11). Batch 16 in total (2 images x 8 GPUs).
_base_ = [
    "../_base_/models/htc_r50_fpn.py",
    "../_base_/datasets/coco_instance_semantic.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# ImageNet weights for the backbone (frozen stem and stage 1, FrozenBN), cached by torch.hub.
model = dict(init_cfg=dict(backbone_checkpoint="torchvision://resnet50"))
