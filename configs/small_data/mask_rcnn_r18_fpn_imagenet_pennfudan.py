# Mask R-CNN R18-FPN on Penn-Fudan from an ImageNet ResNet-18 in a 20-minute CPU budget: the
# from-scratch recipe's model with the pretrained stem and first stage frozen with frozen BN (the
# fine-tuning setup of the COCO recipes) and a lower AdamW LR for the pretrained weights.
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small_data.py",
    "../_base_/datasets/pennfudan_instance.py",
    "../_base_/schedules/schedule_small_data_20min.py",
    "../_base_/default_runtime.py",
]
model = dict(
    type="MaskRCNN",
    backbone=dict(frozen_stages=1, norm="FrozenBN", norm_eval=True),
    rpn_head=dict(anchor_generator=dict(ratios=[1.0, 2.0, 3.0])),
    roi_head=dict(
        mask_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14,
                                featmap_strides=[8, 16, 32], sampling_ratio=2),
        mask_head=dict(type="FCNMaskHead", in_channels=128, num_convs=2, conv_channels=128),
    ),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet18"),
)
optimizer = dict(lr=0.0002)
checkpoint = dict(interval=1000, max_keep=1)
log = dict(interval=25)
