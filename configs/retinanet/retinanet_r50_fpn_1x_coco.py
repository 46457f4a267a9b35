# RetinaNet, ResNet-50 FPN, the standard 1x COCO schedule (12 epochs, steps at 8 and 11).
# Batch 16 in total (2 images x 8 GPUs); with another total batch size scale optimizer.lr linearly.
data_root = "data/coco/"

model = dict(
    type="RetinaNet",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3), frozen_stages=1,
                  norm="FrozenBN", norm_eval=True),
    neck=dict(type="FPN", in_channels=[512, 1024, 2048], out_channels=256, num_outs=5,
              extra_convs="input"),
    bbox_head=dict(
        type="RetinaHead",
        num_classes=80,
        in_channels=256,
        feat_channels=256,
        stacked_convs=4,
        prior_prob=0.01,
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64, 128],
                              octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="FocalLoss", alpha=0.25, gamma=2.0, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        score_thr=0.05, nms_pre=1000, nms_iou_thr=0.5, max_per_img=100,
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=2, num_workers=2, shuffle=True, group_by_aspect_ratio=True,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_train2017.json",
                 img_dir=data_root + "train2017/", pipeline=train_pipeline, filter_empty=True),
)
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_val2017.json",
                 img_dir=data_root + "val2017/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox"])

optimizer = dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0001)
lr_schedule = dict(policy="step", milestones=[8, 11], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=12, val_interval=1, grad_clip=dict(max_norm=35, norm_type=2))
checkpoint = dict(interval=1, max_keep=3)
log = dict(interval=50)
seed = 0
