# The one-stage option: RetinaNet R18-FPN from scratch on the microcontroller boards in a
# 20-minute CPU budget, with the small-data Faster R-CNN's trunk (trainable BN, 128-channel P3-P6)
# and the demo RetinaNet's light GN head and GIoU box loss.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/microcontroller_detection.py",
    "../_base_/schedules/schedule_small_data_20min.py",
    "../_base_/default_runtime.py",
]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=128, num_outs=4),
    bbox_head=dict(
        in_channels=128, feat_channels=128, stacked_convs=2, norm="GN",
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64]),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        reg_decoded_bbox=True,
    ),
)
checkpoint = dict(interval=1000, max_keep=1)
log = dict(interval=25)
