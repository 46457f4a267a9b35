# The demo: a small RetinaNet (ResNet-18 FPN, trained from scratch) on the built-in synthetic
# shapes dataset (circle / square / triangle), sized to train in a few minutes on a laptop CPU.
# The dataset is generated on first use into ~/.cache/detbox (or $DETBOX_CACHE).
model = dict(
    type="RetinaNet",
    backbone=dict(type="ResNet", depth=18, out_indices=(1, 2, 3), frozen_stages=-1,
                  norm="BN", norm_eval=False),
    neck=dict(type="FPN", in_channels=[128, 256, 512], out_channels=64, num_outs=4,
              extra_convs="input"),
    bbox_head=dict(
        type="RetinaHead",
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        norm="GN",
        prior_prob=0.01,
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64],
                              octave_base_scale=2, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="FocalLoss", alpha=0.25, gamma=2.0, loss_weight=1.0),
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        reg_decoded_bbox=True,
        score_thr=0.05, nms_pre=1000, nms_iou_thr=0.5, max_per_img=100,
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=8, num_workers=1, shuffle=True, group_by_aspect_ratio=True,
    dataset=dict(type="SyntheticShapesDataset", split="train", num_images=1200, image_size=128,
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(type="SyntheticShapesDataset", split="val", num_images=200, image_size=128,
                 pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox"])

optimizer = dict(type="AdamW", lr=0.002, weight_decay=0.05)
lr_schedule = dict(policy="cosine", warmup="linear", warmup_iters=100, warmup_ratio=0.01)
train_cfg = dict(max_epochs=6, val_interval=3, grad_clip=dict(max_norm=10, norm_type=2))
checkpoint = dict(interval=3, max_keep=2)
log = dict(interval=20)
seed = 0
