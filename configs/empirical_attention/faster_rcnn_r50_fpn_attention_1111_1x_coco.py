# Faster R-CNN, ResNet-50 FPN with generalized attention (Zhu et al., 2019) after the 3x3 conv
# of every bottleneck of stages c4-c5, the standard 1x COCO schedule (12 epochs, steps at 8 and
# 11). "1111": all four terms (query-key content, query-relative position, key content,
# relative position), 8 heads, keys and values every 2 pixels. Batch 16 in total.
# Published: 40.0 box AP (MMDetection's empirical_attention zoo).
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    backbone=dict(plugins=[dict(
        cfg=dict(type="GeneralizedAttention", attention_type="1111"),
        stages=(False, False, True, True), position="after_conv2")]),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
