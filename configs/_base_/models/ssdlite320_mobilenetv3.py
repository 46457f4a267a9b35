# SSDlite320 (MobileNetV2 paper's SSDlite on MobileNetV3-Large, as torchvision builds it):
# C4's expansion and C5 plus four depthwise-separable extra levels, six levels of priors with
# ratios 2 and 3 whose scales run 0.2 .. 0.95 and whose centres spread evenly over each map,
# depthwise-separable predictors, and torchvision's test settings (score > 0.001, 300 per
# class, NMS 0.55, 300 detections).
model = dict(
    type="SSD",
    backbone=dict(type="SSDMobileNetV3"),
    bbox_head=dict(
        type="SSDHead",
        depthwise=True,
        prior_generator=dict(type="SSDPriorGenerator", aspect_ratios=[[2, 3]] * 6,
                             min_ratio=0.2, max_ratio=0.95),
        score_thr=0.001, topk=300, nms_iou_thr=0.55, max_per_img=300,
    ),
)
