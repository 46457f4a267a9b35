# Hybrid Task Cascade (Chen et al., 2019) without the semantic branch, ResNet-50 FPN: three
# cascade box stages (IoU 0.5 / 0.6 / 0.7, loss weights 1 / 0.5 / 0.25) interleaved with three
# 4-conv HTC mask heads linked by the mask information flow (HTCRoIHead's defaults). As in the
# paper's release, the RPN regresses with smooth L1 (beta 1/9), the box stages with smooth L1.
model = dict(
    type="HybridTaskCascade",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0)),
    roi_head=dict(
        type="HTCRoIHead",
        bbox_head=dict(type="Shared2FCBBoxHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0)),
        mask_head=dict(type="HTCMaskHead"),
    ),
)
