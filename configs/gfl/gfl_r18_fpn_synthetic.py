# GFL next to the demo RetinaNet (configs/demo/retinanet_r18_fpn_synthetic.py): the same
# ResNet-18 FPN trained from scratch, the same synthetic shapes, schedule and head size; the
# anchors (which serve the ATSS assigner) are halved for the 128 px images as the demo halves
# RetinaNet's (reg_max stays 16 strides).
_base_ = [
    "../_base_/models/gfl_r50_fpn.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=64, num_outs=4, extra_convs="input"),
    bbox_head=dict(
        in_channels=64, feat_channels=64, stacked_convs=2,
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64], ratios=[1.0],
                              octave_base_scale=4, scales_per_octave=1),
    ),
)
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
