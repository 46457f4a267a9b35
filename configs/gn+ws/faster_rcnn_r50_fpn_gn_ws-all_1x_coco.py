# Faster R-CNN, ResNet-50 FPN with GroupNorm + Weight Standardization, the 1x COCO schedule.
# Published: 39.7 box AP (MMDetection's gn+ws zoo), trained from a GN+WS ImageNet backbone.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# GN + WS convs throughout: backbone, FPN and a 4conv1fc box head (GN has no statistics to keep
# in eval mode); the RPN head has no norm, as in the published model. The published figure
# starts from a GN+WS ImageNet backbone: give such a checkpoint (torchvision layout) in
# backbone_checkpoint; the torchvision BN weights below load (same keys) but are a different
# starting point.
model = dict(
    backbone=dict(norm="GN", norm_eval=False, conv_cfg=dict(type="ConvWS")),
    neck=dict(norm="GN", conv_cfg=dict(type="ConvWS")),
    roi_head=dict(bbox_head=dict(type="ConvFCBBoxHead", num_convs=4, num_fcs=1,
                                 norm="GN", conv_cfg=dict(type="ConvWS"))),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
