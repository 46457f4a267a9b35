# SSD300 on the built-in synthetic shapes (circle / square / triangle), sized to train from
# scratch on a CPU in minutes: the VGG and extra levels at 1/8 of their widths (width_mult;
# VGG-16 itself costs ~35 GFLOPs per 300 px image, this ~0.6) and the 128 px images resized to
# the 300 x 300 input whose 8,732 priors the model keeps unchanged. Without pretrained weights
# (and without batch norm) AdamW trains it; the augmentation is a flip only, enough for 5 epochs.
_base_ = [
    "../_base_/models/ssd300.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(backbone=dict(width_mult=0.125))
_img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
_train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(300, 300), keep_ratio=False),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **_img_norm),
    dict(type="PackDetInputs"),
]
_test_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(300, 300), keep_ratio=False),
    dict(type="Normalize", **_img_norm),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(size_divisor=1, group_by_aspect_ratio=False,
                        dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(size_divisor=1, dataset=dict(pipeline=_test_pipeline))
test_pipeline = _test_pipeline
train_cfg = dict(max_epochs=5, val_interval=5)
checkpoint = dict(interval=5, max_keep=1)
log = dict(interval=20)
