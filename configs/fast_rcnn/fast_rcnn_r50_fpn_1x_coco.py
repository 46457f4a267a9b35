# Fast R-CNN (Girshick, 2015) R50-FPN, 1x: the Faster R-CNN RoI head trained and tested on the
# proposals of a trained RPN (configs/rpn/rpn_r50_fpn_1x_coco.py), written once per split with
#   detbox test configs/rpn/rpn_r50_fpn_1x_coco.py RPN.pth --out-proposals FILE --format-only
# (for train2017: --cfg-options val_dataloader.dataset.ann_file=... img_dir=... as below).
_base_ = [
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="FastRCNN",
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    roi_head=dict(type="StandardRoIHead", bbox_head=dict(type="Shared2FCBBoxHead")),
)

_proposals_dir = "data/coco/proposals/"
img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadProposals", file=_proposals_dir + "rpn_r50_fpn_1x_train2017.pth",
         num_max_proposals=2000),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadProposals", file=_proposals_dir + "rpn_r50_fpn_1x_val2017.pth"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
