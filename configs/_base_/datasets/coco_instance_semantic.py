# COCO 2017 boxes and masks plus COCO-stuff's per-image semantic maps (stuffthingmaps PNGs,
# data/coco/stuffthingmaps/train2017/<image>.png) for training HTC's semantic branch.
data_root = "data/coco/"

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations", with_mask=True, with_seg=True),
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
                 img_dir=data_root + "train2017/", pipeline=train_pipeline, filter_empty=True,
                 seg_prefix=data_root + "stuffthingmaps/train2017/"),
)
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_val2017.json",
                 img_dir=data_root + "val2017/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox", "segm"])
