# HTC without the semantic branch, ResNet-50 FPN, the standard 1x COCO schedule (12 epochs,
# steps at 8 and 11): trains on plain COCO instances. Batch 16 in total (2 images x 8 GPUs).
_base_ = [
    "../_base_/models/htc_without_semantic_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# ImageNet weights for the backbone (frozen stem and stage 1, FrozenBN), cached by torch.hub.
model = dict(init_cfg=dict(backbone_checkpoint="torchvision://resnet50"))
