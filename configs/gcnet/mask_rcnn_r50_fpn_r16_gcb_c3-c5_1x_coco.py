# Mask R-CNN, ResNet-50 FPN with GCNet context blocks (bottleneck ratio 1/16) in every
# bottleneck of stages c3-c5, the 1x COCO schedule. Published: 39.7 box AP / 35.9 mask AP
# (MMDetection's gcnet zoo, frozen-BN backbone; 40.4 / 36.2 with SyncBN in the backbone).
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# Each context block sits on the residual branch after conv3 and its norm; its last conv
# starts at zero, so training starts from the ImageNet network.
model = dict(
    backbone=dict(plugins=[dict(cfg=dict(type="ContextBlock", ratio=1 / 16),
                                stages=(False, True, True, True), position="after_conv3")]),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
