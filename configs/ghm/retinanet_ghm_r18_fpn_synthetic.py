# The synthetic-shapes demo (configs/demo/retinanet_r18_fpn_synthetic.py) with the GHM losses:
# ResNet-18 FPN from scratch, the same data and schedule; GHM-R regresses deltas.
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
        loss_cls=dict(type="GHMC", bins=30, momentum=0.75),
        loss_bbox=dict(type="GHMR", mu=0.02, bins=10, momentum=0.7, loss_weight=10.0),
    ),
)
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
