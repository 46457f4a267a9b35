# Mask R-CNN on HRNetV2p-W32 with an HRFPN neck (see faster_rcnn_hrnetv2p_w32_1x_coco.py), the
# heads of the ResNet-50 FPN recipe and the standard 1x COCO schedule (12 epochs, steps at 8 and
# 11). Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales
# the lr.
# Published: 41.2 box AP, 37.1 mask AP (MMDetection's HRNet recipe).
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# The official HRNetV2-W32 ImageNet weights (as MMDetection publishes them), cached by torch.hub.
model = dict(
    init_cfg=dict(backbone_checkpoint="https://download.openmmlab.com/pretrain/third_party/"
                                      "hrnetv2_w32-dc9eeb4f.pth"),
    backbone=dict(_delete_=True, type="HRNet", width=32),
    neck=dict(_delete_=True, type="HRFPN"),
)
