# A small Fast R-CNN (ResNet-18 FPN, from scratch) on the built-in synthetic shapes, trained and
# tested on the proposals of configs/rpn/rpn_r18_fpn_synthetic.py (docs/model_zoo.md, "Fast
# R-CNN"): LoadProposals reads them right after the image, Resize and RandomFlip move them.
_base_ = [
    "../_base_/models/fast_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

_proposals_dir = "work_dirs/rpn_r18_fpn_synthetic/"
img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadProposals", file=_proposals_dir + "proposals_train.pth", num_max_proposals=300),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadProposals", file=_proposals_dir + "proposals_val.pth", num_max_proposals=300),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
