# Faster R-CNN, ResNet-50 FPN, trained by iterations as in Detectron2: 90k iterations of 16
# images, LR steps at 60k and 80k, evaluation and a checkpoint every 5000 iterations.
# Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_90k.py",
    "../_base_/default_runtime.py",
]

# ImageNet weights for the backbone (frozen stem and stage 1, FrozenBN), cached by torch.hub.
model = dict(init_cfg=dict(backbone_checkpoint="torchvision://resnet50"))
checkpoint = dict(interval=5000)  # iterations, like train_cfg.val_interval
