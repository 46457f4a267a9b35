# COCO 2017 boxes for SSDlite320 (torchvision's "ssdlite" recipe): min-IoU random crops and
# flips only, every image resized to 320 x 320 without keeping its aspect ratio, pixels mapped
# to [-1, 1]; no padding to 32 (size_divisor=1): the priors are laid out for the 320 px input.
data_root = "data/coco/"
_input_size = 320
img_norm = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
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
    batch_size=24, num_workers=2, shuffle=True, group_by_aspect_ratio=False, size_divisor=1,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_train2017.json",
                 img_dir=data_root + "train2017/", pipeline=train_pipeline, filter_empty=True),
)
val_dataloader = dict(
    batch_size=8, num_workers=2, size_divisor=1,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_val2017.json",
                 img_dir=data_root + "val2017/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox"])
