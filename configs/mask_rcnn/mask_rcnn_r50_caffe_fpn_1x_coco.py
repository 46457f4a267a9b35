# Mask R-CNN, caffe-style ResNet-50 FPN (MSRA's ImageNet weights: stride in each stage's first
# 1x1 conv, BGR input minus the mean, std 1), the standard 1x COCO schedule. Batch 16 in total.
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance_caffe.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# Convert Detectron's ImageNetPretrained/MSRA/R-50.pkl once:
#   detbox convert-weights detectron-caffe R-50.pkl checkpoints/resnet50_msra_caffe.pth
model = dict(
    backbone=dict(style="caffe"),
    init_cfg=dict(backbone_checkpoint="checkpoints/resnet50_msra_caffe.pth"),
)
