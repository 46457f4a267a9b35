# RetinaNet, caffe-style ResNet-50 FPN (MSRA's ImageNet weights: stride in each stage's first
# 1x1 conv, BGR input minus the mean, std 1), the standard 1x COCO schedule. Batch 16 in total.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection_caffe.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# Convert Detectron's ImageNetPretrained/MSRA/R-50.pkl once:
#   detbox convert-weights detectron-caffe R-50.pkl checkpoints/resnet50_msra_caffe.pth
model = dict(
    backbone=dict(style="caffe"),
    init_cfg=dict(backbone_checkpoint="checkpoints/resnet50_msra_caffe.pth"),
    bbox_head=dict(num_classes=80),
)

# The focal loss trains with half the LR of the two-stage detectors, and with gradient clipping.
optimizer = dict(lr=0.01)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
