# Mask Scoring R-CNN on the synthetic shapes: the small Mask R-CNN plus a MaskIoU head, whose
# predicted mask IoU multiplies the classification score into the mask score.
_base_ = [
    "../_base_/models/mask_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_instance.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="MaskScoringRCNN",
    roi_head=dict(mask_iou_head=dict(type="MaskIoUHead", in_channels=64, num_convs=2,
                                     conv_channels=64, fc_channels=256)),
)
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
