# Mask R-CNN, ResNet-50 FPN with deformable convs in c3-c5, the standard 1x COCO schedule
# (12 epochs, steps at 8 and 11). Batch 16 in total (2 images x 8 GPUs); with another total
# batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# Deformable convs (Dai et al., 2017) in place of the 3x3 conv of every bottleneck of stages
# c3-c5; their offset convs start at zero, so training starts from the ImageNet network.
model = dict(
    backbone=dict(dcn=dict(type="DCN"), stage_with_dcn=(False, True, True, True)),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
