# FoveaBox next to the demo RetinaNet (configs/demo/retinanet_r18_fpn_synthetic.py): the same
# ResNet-18 FPN trained from scratch, the same synthetic shapes, schedule and head size. Base
# edges and scale ranges are halved for the 128 px images, as the demo halves RetinaNet's
# anchors; the head gets the demo's GroupNorm towers.
_base_ = [
    "../_base_/models/fovea_r50_fpn.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=64, num_outs=4),
    bbox_head=dict(
        in_channels=64, feat_channels=64, stacked_convs=2, norm="GN",
        strides=[8, 16, 32, 64], base_edges=[8, 16, 32, 64],
        assigner=dict(type="FoveaAssigner", scale_ranges=[(1, 32), (16, 64), (32, 128),
                                                          (64, 256)]),
    ),
)
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
