# Faster R-CNN, ResNet-50 FPN with modulated deformable convs in c3-c5, the standard 1x COCO
# schedule (12 epochs, steps at 8 and 11). Batch 16 in total (2 images x 8 GPUs); with another
# total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# Modulated deformable convs (DCN v2, Zhu et al., 2019) in place of the 3x3 conv of every
# bottleneck of stages c3-c5; offsets start at zero and the masks at the paper's 0.5
# (dcn=dict(type="DCNv2", mask_gain=2) starts them at 1: exactly the ImageNet network).
model = dict(
    backbone=dict(dcn=dict(type="DCNv2"), stage_with_dcn=(False, True, True, True)),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
