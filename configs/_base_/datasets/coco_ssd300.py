# COCO 2017 boxes for SSD300: the paper's augmentation (colour distortion, zoom out up to 4x,
# min-IoU crops), then every image resized to 300 x 300 without keeping its aspect ratio.
# Mean/std are torchvision's SSD ones for its VGG-16 "features" weights (0-255 inputs minus
# the mean, std 1); no padding to 32 (size_divisor=1): the priors are laid out for 300 px.
data_root = "data/coco/"
_input_size = 300
img_norm = dict(mean=[v * 255 for v in (0.48235, 0.45882, 0.40784)], std=[1.0, 1.0, 1.0])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="PhotoMetricDistortion"),
    dict(type="Expand", mean=img_norm["mean"], ratio_range=(1, 4)),
    dict(type="MinIoURandomCrop", min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
    dict(type="Resize", scale=(_input_size, _input_size), keep_ratio=False),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(_input_size, _input_size), keep_ratio=False),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=8, num_workers=2, shuffle=True, group_by_aspect_ratio=False, size_divisor=1,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_train2017.json",
                 img_dir=data_root + "train2017/", pipeline=train_pipeline, filter_empty=True),
)
val_dataloader = dict(
    batch_size=8, num_workers=2, size_divisor=1,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_val2017.json",
                 img_dir=data_root + "val2017/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox"])
