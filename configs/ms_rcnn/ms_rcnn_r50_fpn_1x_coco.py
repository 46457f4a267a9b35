# Mask Scoring R-CNN, ResNet-50 FPN, the standard 1x COCO schedule (12 epochs, steps 8, 11):
# the Mask R-CNN recipe plus a MaskIoU head (its defaults are the paper's). Detections carry
# mask_iou; their mask score (which segm evaluation ranks by) is scores * mask_iou.
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# ImageNet weights for the backbone (frozen stem and stage 1, FrozenBN), cached by torch.hub.
model = dict(
    type="MaskScoringRCNN",
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    roi_head=dict(mask_iou_head=dict(type="MaskIoUHead")),
)
