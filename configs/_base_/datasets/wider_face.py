# WIDER FACE, one class (face), images resized to fit 640x640. The official archives unpacked
# under data/WIDERFace (WIDER_train/images, WIDER_val/images, wider_face_split/,
# eval_tools/ground_truth/), then per split:
#   detbox convert widerface data/WIDERFace/wider_face_split/wider_face_train_bbx_gt.txt \
#     data/WIDERFace/WIDER_train/images data/WIDERFace/WIDER_train/Annotations \
#     data/WIDERFace/train.txt
# Validation reports the easy / medium / hard AP of the official evaluation.
data_root = "data/WIDERFace/"

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations"),
    dict(type="Resize", scale=(640, 640)),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(640, 640)),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=2, num_workers=2, shuffle=True, group_by_aspect_ratio=True,
    dataset=dict(type="WIDERFaceDataset", data_root=data_root, split_file="train.txt",
                 img_subdir="WIDER_train/images", ann_subdir="WIDER_train/Annotations",
                 pipeline=train_pipeline, filter_empty=True),
)
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type="WIDERFaceDataset", data_root=data_root, split_file="val.txt",
                 img_subdir="WIDER_val/images", ann_subdir="WIDER_val/Annotations",
                 pipeline=test_pipeline, test_mode=True,
                 eval_gt_dir=data_root + "eval_tools/ground_truth/"),
)
evaluation = dict(metric=["wider_face"])
