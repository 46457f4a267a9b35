# Mask R-CNN, ResNet-50 C4, the standard 1x COCO schedule (12 epochs, steps at 8 and 11).
# Batch 16 in total (2 images x 8 GPUs); with another total batch size scale optimizer.lr linearly.
data_root = "data/coco/"

# C4: the backbone stops at C4 (stride 16); the RPN and the RoI head read C4 alone, and the RoI
# head runs ResNet's res5 on 14x14 RoIs; init_cfg=dict(backbone_checkpoint=...) initializes both
# the backbone and res5 (from the checkpoint's layer4.*).
model = dict(
    type="MaskRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(2,), num_stages=3, frozen_stages=1,
                  norm="FrozenBN", norm_eval=True),
    rpn_head=dict(
        type="RPNHead",
        in_channels=1024,
        feat_channels=1024,
        anchor_generator=dict(type="AnchorGenerator", strides=[16], ratios=[0.5, 1.0, 2.0],
                              scales=[2, 4, 8, 16, 32]),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                      allow_low_quality_matches=True, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        train_proposals=dict(nms_pre=12000, max_per_img=2000, nms_iou_thr=0.7),
        test_proposals=dict(nms_pre=6000, max_per_img=1000, nms_iou_thr=0.7),
    ),
    roi_head=dict(
        type="Res5RoIHead",
        depth=50,
        norm="FrozenBN",
        roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14, sampling_ratio=0,
                           aligned=True, featmap_strides=[16]),
        bbox_head=dict(
            type="ConvFCBBoxHead",
            in_channels=2048,
            roi_size=7,
            with_avg_pool=True,
            num_fcs=0,
            box_coder=dict(type="DeltaXYWHBoxCoder", target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type="CrossEntropyLoss", loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
            score_thr=0.05, nms_iou_thr=0.5, max_per_img=100,
        ),
        mask_head=dict(type="FCNMaskHead", in_channels=2048, roi_size=7, num_convs=0,
                       conv_channels=256, mask_thr=0.5),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                      allow_low_quality_matches=False, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=512, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="LoadAnnotations", with_mask=True),
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
                 img_dir=data_root + "train2017/", pipeline=train_pipeline, filter_empty=True),
)
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type="CocoDataset", ann_file=data_root + "annotations/instances_val2017.json",
                 img_dir=data_root + "val2017/", pipeline=test_pipeline, test_mode=True),
)
evaluation = dict(metric=["bbox", "segm"])

optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
lr_schedule = dict(policy="step", milestones=[8, 11], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=12, val_interval=1)
checkpoint = dict(interval=1, max_keep=3)
log = dict(interval=50)
seed = 0
