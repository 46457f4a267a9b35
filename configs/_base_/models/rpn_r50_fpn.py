# The RPN alone on ResNet-50 FPN P2-P6, with RPNHead's defaults (the paper's anchors, assigner,
# sampler and 1000 test proposals per image).
model = dict(
    type="RPN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead"),
)
