# TridentNet R50-C4 (see tridentnet_r50_c4_1x_coco.py) with multi-scale training: the short side
# drawn per image from 640-800 (step 32, long side at most 1333), the 2x schedule (24 epochs).
_base_ = [
    "../_base_/models/faster_rcnn_r50_c4.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_2x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="TridentFasterRCNN",
    backbone=dict(type="TridentResNet"),
    rpn_head=dict(train_proposals=dict(nms_pre=12000, max_per_img=500)),
    roi_head=dict(
        sampler=dict(type="RandomSampler", num=128, pos_fraction=0.5, add_gt_as_proposals=False),
    ),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768),
                               (1333, 800)], keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
