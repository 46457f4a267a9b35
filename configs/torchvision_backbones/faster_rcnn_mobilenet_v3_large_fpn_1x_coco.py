# Faster R-CNN on torchvision's MobileNetV3-Large (Howard et al., 2019) with FPN P2-P6, the 1x
# COCO schedule (12 epochs, steps at 8 and 11).
# Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# The backbone replaces the ResNet-50 whole (_delete_); its maps at strides 4-32 (24, 40, 112,
# 960 channels) are cut out of the network by torchvision's feature extraction, and the FPN
# reads those in_channels from it. FrozenBN and a frozen stem, as torchvision's detectors on
# ImageNet weights. The weights come from a local file, never downloaded during training: save
#   python -c "import torch, torchvision; torch.save(torchvision.models.mobilenet_v3_large(
#              weights='IMAGENET1K_V1').state_dict(), 'checkpoints/mobilenet_v3_large.pth')"
# (or set init_cfg=dict(backbone_checkpoint='torchvision://mobilenet_v3_large') and drop
# weights_file to use torch.hub's cache).
model = dict(
    backbone=dict(_delete_=True, type="TorchvisionBackbone", model_name="mobilenet_v3_large",
                  out_indices=(0, 1, 2, 3), weights_file="checkpoints/mobilenet_v3_large.pth",
                  frozen_stages=0, frozen_bn=True),
)
