# torchvision's maskrcnn_resnet50_fpn as a detbox model (load converted torchvision weights).
# Only what differs from detbox's defaults, to match torchvision: rounded anchors with
# torchvision's stride rule (padded size // feature size, which moves the stride-64 anchors when
# the padded size is not a multiple of 64), per-level top-k, RoIAlign aligned=False with
# sampling_ratio=2, BoxCoder weights (10, 10, 5, 5) = stds (0.1, 0.1, 0.2, 0.2), score threshold
# 0.05, 100 detections, its mask paste.
model = dict(
    type="MaskRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32, 64],
                              sizes=[[32], [64], [128], [256], [512]], round_base=True,
                              strides_from_sizes=True),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.0,
                      ignore_iof_thr=-1.0),
        loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9),
        train_proposals=dict(nms_pre=2000, max_per_img=2000, min_box_size=1e-3),
        test_proposals=dict(nms_pre=1000, max_per_img=1000, min_box_size=1e-3),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", sampling_ratio=2, aligned=False),
        bbox_head=dict(type="Shared2FCBBoxHead", loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9),
                       min_box_size=1e-2),
        mask_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14, sampling_ratio=2,
                                aligned=False),
        mask_head=dict(type="FCNMaskHead", paste_mode="torchvision"),
    ),
)
