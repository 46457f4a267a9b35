# Cascade R-CNN (Cai & Vasconcelos, 2018) on ResNet-50 FPN: three class-agnostic box stages
# trained at IoU 0.5 / 0.6 / 0.7 with shrinking target stds and loss weights 1 / 0.5 / 0.25
# (CascadeRoIHead's defaults). As in the paper's release, the RPN regresses with smooth L1
# (beta 1/9) and the box stages with smooth L1 (beta 1).
model = dict(
    type="CascadeRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0)),
    roi_head=dict(
        type="CascadeRoIHead",
        bbox_head=dict(type="Shared2FCBBoxHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0)),
    ),
)
