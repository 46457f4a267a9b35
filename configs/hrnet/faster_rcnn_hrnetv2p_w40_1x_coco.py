# Faster R-CNN on HRNetV2p-W40 (Wang et al., TPAMI 2020): the four HRNet branches (40-320
# channels, strides 4-32) through an HRFPN (concatenated at stride 4, pooled to P2-P6), with the
# heads of the ResNet-50 FPN recipe and the standard 1x COCO schedule (12 epochs, steps at 8 and
# 11). BN with ImageNet statistics kept fixed (norm_eval). Batch 16 in total (2 images x 8 GPUs);
# with another total batch, --auto-scale-lr scales the lr.
# Published: 41.2 box AP (MMDetection's HRNet recipe).
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# The official HRNetV2-W40 ImageNet weights (as MMDetection publishes them), cached by torch.hub.
model = dict(
    init_cfg=dict(backbone_checkpoint="https://download.openmmlab.com/pretrain/third_party/"
                                      "hrnetv2_w40-ed0b031c.pth"),
    backbone=dict(_delete_=True, type="HRNet", width=40),
    neck=dict(_delete_=True, type="HRFPN"),
)
