# SSD512 (VGG-16) on COCO, MMDetection's recipe (as ssd300_coco.py: SGD lr 2e-3 for a total
# batch of 64, 120 epochs, steps at 80 and 110). 512 x 512 inputs, seven prior levels (64 .. 1)
# with conv12_2, and MMDetection's SSD512 prior scales: 0.04, then 0.1 .. 0.9 of the image.
_base_ = [
    "../_base_/models/ssd300.py",
    "../_base_/datasets/coco_ssd300.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://vgg16_features"),
    backbone=dict(input_size=512),
    bbox_head=dict(
        num_classes=80,
        prior_generator=dict(
            type="SSDPriorGenerator",
            aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]],
            scales=[0.04, 0.1, 0.26, 0.42, 0.58, 0.74, 0.9, 1.06],
            steps=[8, 16, 32, 64, 128, 256, 512]),
    ),
)
_img_norm = dict(mean=[v * 255 for v in (0.48235, 0.45882, 0.40784)], std=[1.0, 1.0, 1.0])
_train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="PhotoMetricDistortion"),
    dict(type="Expand", mean=_img_norm["mean"], ratio_range=(1, 4)),
    dict(type="MinIoURandomCrop", min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
    dict(type="Resize", scale=(512, 512), keep_ratio=False),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **_img_norm),
    dict(type="PackDetInputs"),
]
_test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(512, 512), keep_ratio=False),
    dict(type="Normalize", **_img_norm),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
test_pipeline = _test_pipeline
optimizer = dict(lr=0.002, weight_decay=0.0005)
auto_scale_lr = dict(base_batch_size=64)
lr_schedule = dict(milestones=[80, 110])
train_cfg = dict(max_epochs=120)
