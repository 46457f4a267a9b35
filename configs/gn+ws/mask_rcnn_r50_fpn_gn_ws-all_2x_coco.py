# Mask R-CNN, ResNet-50 FPN with GroupNorm + Weight Standardization everywhere, the 2x COCO
# schedule (24 epochs, steps at 16 and 22). Batch 16 in total (2 images x 8 GPUs).
# Published: 40.6 box AP / 36.6 mask AP (MMDetection's gn+ws zoo), from a GN+WS ImageNet
# backbone.
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_2x.py",
    "../_base_/default_runtime.py",
]

# GN + WS convs in the backbone, the FPN, a 4conv1fc box head and the mask head's 4 convs; the
# RPN head has no norm. As in the 1x Faster R-CNN recipe, the published run starts from a
# GN+WS ImageNet backbone (give one in torchvision's layout); torchvision's BN ResNet-50 loads.
model = dict(
    backbone=dict(norm="GN", norm_eval=False, conv_cfg=dict(type="ConvWS")),
    neck=dict(norm="GN", conv_cfg=dict(type="ConvWS")),
    roi_head=dict(
        bbox_head=dict(type="ConvFCBBoxHead", num_convs=4, num_fcs=1, norm="GN",
                       conv_cfg=dict(type="ConvWS")),
        mask_head=dict(norm="GN", conv_cfg=dict(type="ConvWS")),
    ),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
