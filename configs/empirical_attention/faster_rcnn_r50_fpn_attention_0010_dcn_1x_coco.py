# Faster R-CNN, ResNet-50 FPN with key-content generalized attention ("0010", Zhu et al., 2019)
# in c4-c5 and deformable convs in c3-c5: the paper's finding that the two are complementary
# (attention on key content, deformable sampling on query-relative position). The standard 1x
# COCO schedule (12 epochs, steps at 8 and 11), batch 16 in total.
# Published: 42.0 box AP (MMDetection's empirical_attention zoo).
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# The deformable conv replaces conv2; the attention then runs on its output.
model = dict(
    backbone=dict(
        plugins=[dict(
            cfg=dict(type="GeneralizedAttention", attention_type="0010"),
            stages=(False, False, True, True), position="after_conv2")],
        dcn=dict(type="DCN"), stage_with_dcn=(False, True, True, True),
    ),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
