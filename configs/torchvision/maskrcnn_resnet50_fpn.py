# torchvision's maskrcnn_resnet50_fpn as a detbox model, for inference with its weights:
#   sd = convert_torchvision_state_dict("maskrcnn_resnet50_fpn", tv_model.state_dict())
#   model.load_state_dict(sd)   (detbox.models.weight_conversion)
# Labels 0..89 are torchvision's 1..90 (COCO category ids). Below, only what differs from detbox's
# defaults, to match torchvision: rounded anchors, per-level top-k, RoIAlign aligned=False with
# sampling_ratio=2, BoxCoder weights (10, 10, 5, 5) = stds (0.1, 0.1, 0.2, 0.2), score threshold
# 0.05, 100 detections, its mask paste.
# torchvision infers anchor strides as padded_size // feature_size; with a size divisor of 64
# those equal the nominal strides below for every image (with 32 they may differ on P6).
_base_ = "../_base_/models/mask_rcnn_r50_fpn.py"
num_classes = 90

model = dict(
    backbone=dict(frozen_stages=-1),
    rpn_head=dict(
        anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32, 64],
                              sizes=[[32], [64], [128], [256], [512]], round_base=True),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.0,
                      ignore_iof_thr=-1.0),
        loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9),
        train_proposals=dict(nms_pre=2000, max_per_img=2000, min_box_size=1e-3),
        test_proposals=dict(nms_pre=1000, max_per_img=1000, min_box_size=1e-3),
    ),
    roi_head=dict(
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", sampling_ratio=2, aligned=False),
        bbox_head=dict(num_classes=num_classes, loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9),
                       min_box_size=1e-2),
        mask_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14, sampling_ratio=2,
                                aligned=False),
        mask_head=dict(num_classes=num_classes, paste_mode="torchvision"),
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
