# GA-RetinaNet (Wang et al., 2019, Guided Anchoring): RetinaNet whose anchors are predicted (a
# location probability and a shape per cell) instead of tiled, with shape-adapted features.
# ResNet-50 FPN, 1x COCO schedule; GARetinaHead's defaults are the paper's.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
    bbox_head=dict(type="GARetinaHead", num_classes=80),
)

optimizer = dict(lr=0.01)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
