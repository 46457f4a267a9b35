# The small synthetic Mask R-CNN (mask_rcnn_r18_fpn_synthetic.py) trained with Simple Copy-Paste:
# each training image gets objects of another one pasted on it (CopyPaste, fed by
# MultiImageMixDataset), the source scaled by 0.5-1.5.
_base_ = [
    "../_base_/models/mask_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_instance.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

train_dataloader = dict(dataset=dict(
    _delete_=True,
    type="MultiImageMixDataset",
    dataset=dict(type="SyntheticShapesDataset", split="train", num_images=1200, image_size=128,
                 pipeline=[dict(type="LoadImage"), dict(type="LoadAnnotations", with_mask=True)]),
    pipeline=[
        dict(type="CopyPaste", scale_range=(0.5, 1.5)),
        dict(type="Resize", scale=(128, 128), keep_ratio=True),
        dict(type="RandomFlip", prob=0.5),
        dict(type="Normalize", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
        dict(type="PackDetInputs"),
    ],
))
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
