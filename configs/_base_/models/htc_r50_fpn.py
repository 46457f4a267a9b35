# Hybrid Task Cascade (Chen et al., 2019), ResNet-50 FPN, with the semantic branch: P2-P6 fused
# at stride 8, segmented into COCO-stuff's 183 classes (loss weight 0.2), its features added to
# every box and mask RoI feature. Needs per-image semantic maps (coco_instance_semantic.py).
model = dict(
    type="HybridTaskCascade",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0)),
    roi_head=dict(
        type="HTCRoIHead",
        bbox_head=dict(type="Shared2FCBBoxHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0)),
        mask_head=dict(type="HTCMaskHead"),
        semantic_head=dict(type="FusedSemanticHead"),
    ),
)
