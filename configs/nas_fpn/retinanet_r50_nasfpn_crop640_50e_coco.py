# RetinaNet, ResNet-50 with NAS-FPN (Ghiasi et al., 2019): the searched 7-cell pyramid over
# P3-P7, stacked 7 times at 256 channels, trained as in the paper: 640 x 640 crops with scale
# jitter 0.8-1.2, trainable BN in backbone and neck, 50 epochs, a total batch of 64 (8 images x
# 8 GPUs; with another total batch, --auto-scale-lr scales the lr).
# Published: 40.5 box AP (MMDetection's nas_fpn zoo). The head is RetinaSepBNHead: tower convs
# shared over the levels, one BN per level.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# C2-C5 out, C3-C5 used (start_level=1); the neck's in_channels come from the backbone. NASFPN's
# defaults are the paper's R-50 model: 7 stages of 256 channels, P3-P7, 1x1 convs before the
# extra levels, BN. Batch statistics train everywhere (BN, not frozen: 8 images per GPU),
# the head's included.
model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3), norm="BN", norm_eval=False),
    neck=dict(_delete_=True, type="NASFPN", start_level=1),
    bbox_head=dict(type="RetinaSepBNHead", num_classes=80,
                   assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5,
                                 min_pos_iou=0.0, allow_low_quality_matches=True)),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)

_img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
_train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(640, 640), ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(640, 640), allow_empty=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **_img_norm),
    dict(type="PackDetInputs"),
]
_test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(640, 640), keep_ratio=True),
    dict(type="Normalize", **_img_norm),
    dict(type="PackDetInputs"),
]
# Padding to 128 keeps every level exactly half the previous one (P7 has stride 128).
train_dataloader = dict(batch_size=8, size_divisor=128, dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(size_divisor=128, dataset=dict(pipeline=_test_pipeline))
test_pipeline = _test_pipeline

# lr 0.08 for the total batch of 64, no weight decay on norms; 1000 warmup iterations from a
# tenth of the lr; steps at epochs 30 and 40.
optimizer = dict(lr=0.08, norm_decay_mult=0.0)
auto_scale_lr = dict(base_batch_size=64)
lr_schedule = dict(milestones=[30, 40], warmup_iters=1000, warmup_ratio=0.1)
train_cfg = dict(max_epochs=50)
