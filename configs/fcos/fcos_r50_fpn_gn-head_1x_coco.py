# FCOS with a GroupNorm head, ResNet-50 FPN (ImageNet weights from torchvision, i.e. the
# pytorch-style counterpart of the paper's caffe-style model), the 1x COCO schedule, batch 16.
# The head is the first paper's: no centre sampling, IoU loss, centre-ness on the class tower.
_base_ = [
    "../_base_/models/fcos_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(num_classes=80),
)
# The paper's recipe: lr 0.01 with a constant warmup at a third of it, gradient clipping.
optimizer = dict(lr=0.01)
lr_schedule = dict(warmup="constant", warmup_ratio=1.0 / 3)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
