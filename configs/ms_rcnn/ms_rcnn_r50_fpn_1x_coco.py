# Mask Scoring R-CNN, ResNet-50 FPN, the standard 1x COCO schedule (12 epochs, steps 8, 11):
# the Mask R-CNN recipe plus a MaskIoU head. Detections carry mask_iou; their mask score (which
# segm evaluation ranks by) is scores * mask_iou.
_base_ = "../mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py"

model = dict(
    type="MaskScoringRCNN",
    roi_head=dict(
        mask_iou_head=dict(type="MaskIoUHead", in_channels=256, roi_size=14, num_convs=4,
                           conv_channels=256, num_fcs=2, fc_channels=1024, loss_weight=0.5),
    ),
)
