# Libra RetinaNet R50-FPN, 1x: the balanced feature pyramid (BFP after the FPN, refined at P5)
# and the balanced L1 loss for the anchor boxes (beta 0.11); the rest is RetinaNet 1x.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
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
            dict(type="FPN", out_channels=256, num_outs=5, extra_convs="input"),
            dict(type="BFP", in_channels=256, num_levels=5, refine_level=1,
                 refine_type="non_local"),
        ],
    ),
    bbox_head=dict(num_classes=80,
                   loss_bbox=dict(type="BalancedL1Loss", alpha=0.5, gamma=1.5, beta=0.11)),
)

optimizer = dict(lr=0.01)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
