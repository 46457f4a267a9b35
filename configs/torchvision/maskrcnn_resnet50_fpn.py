# torchvision's maskrcnn_resnet50_fpn as a detbox model, for inference with its weights:
#   sd = convert_torchvision_state_dict("maskrcnn_resnet50_fpn", tv_model.state_dict())
#   model.load_state_dict(sd)   (detbox.models.convert)
# Labels 0..89 are torchvision's 1..90 (COCO category ids). Every setting below is torchvision's:
# rounded anchors, per-level top-k, RoIAlign aligned=False with sampling_ratio=2, BoxCoder weights
# (10, 10, 5, 5) = stds (0.1, 0.1, 0.2, 0.2), score threshold 0.05, 100 detections, its mask paste.
# torchvision infers anchor strides as padded_size // feature_size; with a size divisor of 64
# those equal the nominal strides below for every image (with 32 they may differ on P6).
num_classes = 90

model = dict(
    type="MaskRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                  norm="FrozenBN"),
    neck=dict(type="FPN", in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5,
              extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32, 64],
                              ratios=[0.5, 1.0, 2.0], sizes=[[32], [64], [128], [256], [512]],
                              round_base=True),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.0,
                      allow_low_quality_matches=True, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True),
        loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9),
        train_proposals=dict(nms_pre=2000, max_per_img=2000, nms_iou_thr=0.7, min_box_size=1e-3),
        test_proposals=dict(nms_pre=1000, max_per_img=1000, nms_iou_thr=0.7, min_box_size=1e-3),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=7, sampling_ratio=2,
                                aligned=False, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type="Shared2FCBBoxHead",
            num_classes=num_classes,
            in_channels=256,
            roi_size=7,
            fc_channels=1024,
            box_coder=dict(type="DeltaXYWHBoxCoder", target_stds=[0.1, 0.1, 0.2, 0.2]),
            loss_cls=dict(type="CrossEntropyLoss"),
            loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9),
            score_thr=0.05, nms_iou_thr=0.5, max_per_img=100, min_box_size=1e-2,
        ),
        mask_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14, sampling_ratio=2,
                                aligned=False, featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(type="FCNMaskHead", num_classes=num_classes, in_channels=256, roi_size=14,
                       num_convs=4, conv_channels=256, mask_thr=0.5, paste_mode="torchvision"),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                      allow_low_quality_matches=False, ignore_iof_thr=-1.0),
        sampler=dict(type="RandomSampler", num=512, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)

# torchvision normalizes with ImageNet statistics and resizes bilinearly so that the short side
# is 800 and the long side at most 1333 (Resize below follows the same rule).
img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
