# Mask R-CNN (He et al., 2017): Faster R-CNN on ResNet-50 FPN plus a 4-conv FCN mask head on
# 14x14 RoIs. Every other setting is the code's default (the paper's); the neck takes its
# in_channels from the backbone, so model.backbone.depth=101 just works.
model = dict(
    type="MaskRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead"),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_head=dict(type="Shared2FCBBoxHead"),
        mask_head=dict(type="FCNMaskHead"),
    ),
)
