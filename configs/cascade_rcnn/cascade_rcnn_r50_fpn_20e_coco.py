# Cascade R-CNN, ResNet-50 FPN, the 20e schedule (20 epochs, steps at 16 and 19).
# Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/cascade_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_20e.py",
    "../_base_/default_runtime.py",
]

# ImageNet weights for the backbone (frozen stem and stage 1, FrozenBN), cached by torch.hub.
model = dict(init_cfg=dict(backbone_checkpoint="torchvision://resnet50"))
