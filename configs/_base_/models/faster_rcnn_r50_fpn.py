# Faster R-CNN (Ren et al., 2015) on ResNet-50 FPN P2-P6. The RPN and RoI head settings
# (anchors, assigners, samplers, proposal counts, RoIAlign) are the code's defaults (the papers');
# the neck takes its in_channels from the backbone, so model.backbone.depth=101 just works.
model = dict(
    type="FasterRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead"),
    roi_head=dict(type="StandardRoIHead", bbox_head=dict(type="Shared2FCBBoxHead")),
)
