# RetinaNet with the gradient harmonizing losses (Li et al., 2019): GHM-C replaces the focal
# loss, GHM-R (authentic smooth L1, mu=0.02) the L1 box loss. ResNet-50 FPN, 1x COCO schedule.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(
        num_classes=80,
        loss_cls=dict(type="GHMC", bins=30, momentum=0.75),
        loss_bbox=dict(type="GHMR", mu=0.02, bins=10, momentum=0.7, loss_weight=10.0),
    ),
)

optimizer = dict(lr=0.01)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
