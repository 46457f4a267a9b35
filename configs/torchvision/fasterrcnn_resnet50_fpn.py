# torchvision's fasterrcnn_resnet50_fpn as a detbox model: its COCO weights after
# `detbox convert-weights torchvision fasterrcnn_resnet50_fpn IN.pth OUT.pth` (80 COCO classes)
# test on COCO val2017, infer, and fine-tune (the 1x schedule: lr 0.02 for a total batch of 16).
# The data pieces already preprocess as torchvision does: resize short side 800 / long side at
# most 1333 (bilinear), ImageNet mean/std, zero padding to a multiple of 32 (the loaders' and
# inference's size divisor, torchvision's size_divisible).
# Below, only what differs from detbox's defaults, to match torchvision: rounded anchors with
# torchvision's stride rule (padded size // feature size, which moves the stride-64 anchors when
# the padded size is not a multiple of 64), per-level top-k, RoIAlign aligned=False with
# sampling_ratio=2, BoxCoder weights (10, 10, 5, 5) = stds (0.1, 0.1, 0.2, 0.2), score threshold
# 0.05, 100 detections.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80

model = dict(
    rpn_head=dict(
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
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", sampling_ratio=2, aligned=False),
        bbox_head=dict(loss_bbox=dict(type="SmoothL1Loss", beta=1 / 9), min_box_size=1e-2),
    ),
)
