# Libra Faster R-CNN, small (ResNet-18 FPN from scratch, 128 px), on the built-in synthetic
# shapes: mask_rcnn_r18_fpn_small.py without its mask head, plus the BFP neck after the FPN,
# IoU-balanced RoI sampling and the balanced L1 box loss.
_base_ = [
    "../_base_/models/mask_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="FasterRCNN",
    neck=dict(
        _delete_=True,
        type="NeckSequence",
        necks=[
            dict(type="FPN", out_channels=64, num_outs=4, extra_convs=None),
            dict(type="BFP", in_channels=64, num_levels=4, refine_level=1),
        ],
    ),
    roi_head=dict(
        bbox_head=dict(loss_bbox=dict(type="BalancedL1Loss")),
        mask_head=None,
        sampler=dict(_delete_=True, type="IoUBalancedNegSampler", num=128, pos_fraction=0.25,
                     add_gt_as_proposals=True),
    ),
)

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
