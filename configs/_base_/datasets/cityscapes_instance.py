# Cityscapes fine instances, the 8 thing classes, converted to COCO JSON by
# `detbox convert cityscapes data/cityscapes data/cityscapes/annotations`. 2048x1024 images:
# training at short side 800-1024 (long side at most 2048), testing at 2048x1024; the 2975
# training images are repeated 8 times per epoch. 'cityscapes' adds the official instance AP
# (needs the cityscapesscripts package; without it a warning says so).
data_root = "data/cityscapes/"

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations", with_mask=True),
    dict(type="Resize", scale=(2048, 1024), scale_range=(800, 1024)),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(2048, 1024)),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=1, num_workers=2, shuffle=True, group_by_aspect_ratio=True,
    dataset=dict(
        type="RepeatDataset", times=8,
        dataset=dict(type="CocoDataset",
                     ann_file=data_root + "annotations/instancesonly_filtered_gtFine_train.json",
                     img_dir=data_root + "leftImg8bit/train/", pipeline=train_pipeline,
                     filter_empty=True),
    ),
)
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type="CocoDataset",
                 ann_file=data_root + "annotations/instancesonly_filtered_gtFine_val.json",
                 img_dir=data_root + "leftImg8bit/val/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox", "segm", "cityscapes"])
