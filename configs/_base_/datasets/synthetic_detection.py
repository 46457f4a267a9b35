# The built-in synthetic shapes (circle / square / triangle), 128 px images, boxes only.
# The dataset is generated on first use into ~/.cache/detbox (or $DETBOX_CACHE).
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
