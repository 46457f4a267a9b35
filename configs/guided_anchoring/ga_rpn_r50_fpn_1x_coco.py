# GA-RPN (Wang et al., 2019, Guided Anchoring) alone, ResNet-50 FPN, 1x COCO schedule:
# class-agnostic proposals from guided anchors, evaluated by proposal recall (AR@100/300/1000).
# GARPNHead's defaults are the paper's.
_base_ = [
    "../_base_/models/rpn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    rpn_head=dict(type="GARPNHead"),
)

train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
evaluation = dict(metric=["proposal"])
