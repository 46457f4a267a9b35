# The demo: a small RetinaNet (ResNet-18 FPN, trained from scratch) on the built-in synthetic
# shapes dataset (circle / square / triangle), sized to train in a few minutes on a laptop CPU.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=64, num_outs=4),
    bbox_head=dict(
        in_channels=64, feat_channels=64, stacked_convs=2, norm="GN",
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64],
                              octave_base_scale=2),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        reg_decoded_bbox=True,
    ),
)
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
