# RPN alone, ResNet-50 FPN, the standard 1x COCO schedule (12 epochs, steps at 8 and 11).
# Predicts class-agnostic proposals (label 0), evaluated by COCO proposal recall (AR@100/300/1000).
# Batch 16 in total (2 images x 8 GPUs); with another total batch size scale optimizer.lr linearly.
data_root = "data/coco/"

model = dict(
    type="RPN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm="FrozenBN", norm_eval=True),
    neck=dict(type="FPN", in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5,
              extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32, 64],
                              ratios=[0.5, 1.0, 2.0], scales=[8]),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                      allow_low_quality_matches=True, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        train_proposals=dict(nms_pre=2000, max_per_img=1000, nms_iou_thr=0.7),
        test_proposals=dict(nms_pre=1000, max_per_img=1000, nms_iou_thr=0.7),
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
evaluation = dict(metric=["proposal"])

optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
lr_schedule = dict(policy="step", milestones=[8, 11], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=12, val_interval=1)
checkpoint = dict(interval=1, max_keep=3)
log = dict(interval=50)
seed = 0
