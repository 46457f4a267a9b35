# GA-RetinaNet on the synthetic shapes with the demo's ResNet-18 FPN (from scratch), data and
# schedule (configs/demo/retinanet_r18_fpn_synthetic.py); anchors of the demo's sizes.
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
        type="GARetinaHead", in_channels=64, feat_channels=64, stacked_convs=2, norm="GN",
        approx_anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64],
                                     octave_base_scale=2),
        square_anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64],
                                     ratios=[1.0], scales=[2]),
    ),
)
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
