# Penn-Fudan pedestrians (one class, instance masks) as COCO JSON: 110 training and 30 validation
# images of about 480 x 380 px. Small-data sizes: short side 320-416 for training, 384 at test.
data_root = "data/pennfudan/"

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations", with_mask=True),
    dict(type="Resize", scale=(640, 384), scale_range=(320, 416)),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(640, 384)),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=2, num_workers=0, shuffle=True,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_train.json",
                 img_dir=data_root + "images/", pipeline=train_pipeline, filter_empty=True),
)
val_dataloader = dict(
    batch_size=1, num_workers=0,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_val.json",
                 img_dir=data_root + "images/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox", "segm"])
