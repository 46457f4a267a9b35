# A small Mask R-CNN (ResNet-18 FPN, trained from scratch) on the built-in synthetic shapes,
# sized to train on a CPU in minutes: 128 px images, 64-channel FPN P2-P5, light RoI heads.
# The dataset is generated on first use into ~/.cache/detbox (or $DETBOX_CACHE).
_width = 64
_strides = [4, 8, 16, 32]

model = dict(
    type="MaskRCNN",
    backbone=dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                  norm="BN", norm_eval=False),
    neck=dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=_width, num_outs=4,
              extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        in_channels=_width,
        feat_channels=_width,
        anchor_generator=dict(type="AnchorGenerator", strides=_strides, ratios=[0.5, 1.0, 2.0],
                              scales=[4]),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                      allow_low_quality_matches=True, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        train_proposals=dict(nms_pre=1000, max_per_img=300, nms_iou_thr=0.7),
        test_proposals=dict(nms_pre=500, max_per_img=100, nms_iou_thr=0.7),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=7, sampling_ratio=2,
                                aligned=True, featmap_strides=_strides, finest_scale=56),
        bbox_head=dict(
            type="Shared2FCBBoxHead",
            in_channels=_width,
            roi_size=7,
            fc_channels=256,
            box_coder=dict(type="DeltaXYWHBoxCoder", target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type="CrossEntropyLoss", loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
            score_thr=0.05, nms_iou_thr=0.5, max_per_img=100,
        ),
        mask_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14, sampling_ratio=2,
                                aligned=True, featmap_strides=_strides, finest_scale=56),
        mask_head=dict(type="FCNMaskHead", in_channels=_width, roi_size=14, num_convs=2,
                       conv_channels=_width, mask_thr=0.5,
                       loss_mask=dict(type="CrossEntropyLoss", use_sigmoid=True)),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                      allow_low_quality_matches=False, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=128, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations", with_mask=True),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(128, 128), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=8, num_workers=1, shuffle=True, group_by_aspect_ratio=True,
    dataset=dict(type="SyntheticShapesDataset", split="train", num_images=1200, image_size=128,
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(type="SyntheticShapesDataset", split="val", num_images=200, image_size=128,
                 pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox", "segm"])

optimizer = dict(type="AdamW", lr=0.002, weight_decay=0.05)
lr_schedule = dict(policy="cosine", warmup="linear", warmup_iters=100, warmup_ratio=0.01)
train_cfg = dict(max_epochs=4, val_interval=2, grad_clip=dict(max_norm=10, norm_type=2))
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
seed = 0
