# FCOS next to the demo RetinaNet (configs/demo/retinanet_r18_fpn_synthetic.py): the same
# ResNet-18 FPN trained from scratch, the same synthetic shapes, schedule and head size. The
# regression ranges are halved for the 128 px images, as the demo halves RetinaNet's anchors;
# the head has the improved FCOS's centre sampling, centre-ness on the regression tower,
# distances in strides and a GIoU loss (the demo RetinaNet's box loss).
_base_ = [
    "../_base_/models/fcos_r50_fpn.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=64, num_outs=4, extra_convs="input"),
    bbox_head=dict(
        in_channels=64, feat_channels=64, stacked_convs=2,
        point_generator=dict(type="PointGenerator", strides=[8, 16, 32, 64]),
        assigner=dict(type="FCOSAssigner", center_sampling=True,
                      regress_ranges=[(-1, 32), (32, 64), (64, 128), (128, 1e8)]),
        centerness_on_reg=True, norm_on_bbox=True,
        loss_bbox=dict(type="GIoULoss"),
    ),
)
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
