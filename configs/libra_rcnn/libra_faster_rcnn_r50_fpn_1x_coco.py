# Libra R-CNN (Pang et al., 2019) on Faster R-CNN R50-FPN, 1x: a balanced feature pyramid (BFP
# after the FPN, refined with a non-local block at P4), IoU-balanced sampling of the RoIs
# (negatives over IoU bins, positives over objects) and the balanced L1 loss for the RoI head's
# boxes; the RPN samples at most 5 negatives per positive.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    neck=dict(
        _delete_=True,
        type="NeckSequence",
        necks=[
            dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
            dict(type="BFP", in_channels=256, num_levels=5, refine_level=2,
                 refine_type="non_local"),
        ],
    ),
    rpn_head=dict(sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=5)),
    roi_head=dict(
        bbox_head=dict(loss_bbox=dict(type="BalancedL1Loss", alpha=0.5, gamma=1.5, beta=1.0)),
        sampler=dict(type="IoUBalancedNegSampler", num=512, pos_fraction=0.25,
                     add_gt_as_proposals=True, floor_thr=-1, floor_fraction=0, num_bins=3),
    ),
)
