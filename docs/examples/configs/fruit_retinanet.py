# A small RetinaNet built from the parts in docs/examples/my_detbox, trained on fruit pictures.
# Run from docs/examples (custom_imports finds my_detbox in the current directory).
custom_imports = dict(imports=["my_detbox.tiny_backbone", "my_detbox.channel_mapper",
                               "my_detbox.log_cosh_loss", "my_detbox.fruit_dataset",
                               "my_detbox.random_grayscale"])

model = dict(
    type="RetinaNet",
    backbone=dict(type="TinyConvNet", widths=[32, 64, 128]),
    neck=dict(type="ChannelMapper", in_channels=[32, 64, 128], out_channels=64, num_outs=4),
    bbox_head=dict(
        type="RetinaHead", in_channels=64, feat_channels=64, stacked_convs=2,
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64],
                              octave_base_scale=2),
        loss_bbox=dict(type="LogCoshLoss"),
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="RandomGrayscale", prob=0.2),
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
    batch_size=2, num_workers=0,
    dataset=dict(type="FruitDataset", ann_file="data/fruit/train.json",
                 img_dir="data/fruit/images", pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=2, num_workers=0,
    dataset=dict(type="FruitDataset", ann_file="data/fruit/val.json",
                 img_dir="data/fruit/images", pipeline=test_pipeline, test_mode=True),
)
# Train on two of the three classes: label 0 is cherry, label 1 apple; bananas are dropped.
class_names = ["cherry", "apple"]
evaluation = dict(metric=["bbox"])

optimizer = dict(type="AdamW", lr=0.001, weight_decay=0.05)
train_cfg = dict(max_epochs=12)
