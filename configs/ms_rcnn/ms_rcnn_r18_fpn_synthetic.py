# Mask Scoring R-CNN on the synthetic shapes: the small Mask R-CNN plus a MaskIoU head, whose
# predicted mask IoU multiplies the classification score into the mask score.
_base_ = "../mask_rcnn/mask_rcnn_r18_fpn_synthetic.py"

model = dict(
    type="MaskScoringRCNN",
    roi_head=dict(
        mask_iou_head=dict(type="MaskIoUHead", in_channels=64, roi_size=14, num_convs=2,
                           conv_channels=64, num_fcs=2, fc_channels=256, loss_weight=0.5),
    ),
)
