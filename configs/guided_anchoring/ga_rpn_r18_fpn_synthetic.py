# GA-RPN alone on the synthetic shapes with the demo's ResNet-18 (from scratch), data and
# schedule; a 64-channel FPN P2-P5 and anchors of 4 strides, evaluated by proposal recall.
_base_ = [
    "../_base_/models/rpn_r50_fpn.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=64, num_outs=4),
    rpn_head=dict(
        type="GARPNHead", in_channels=64, feat_channels=64,
        approx_anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32],
                                     octave_base_scale=4),
        square_anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32],
                                     ratios=[1.0], scales=[4]),
    ),
)
evaluation = dict(metric=["proposal"])
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
