# RetinaNet (Lin et al., 2017) on ResNet-50 FPN P3-P7. Anchors, assigner, focal loss and test
# settings are RetinaHead's defaults (the paper's); the neck takes its in_channels from the
# backbone, so model.backbone.depth=18 just works.
model = dict(
    type="RetinaNet",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs="input"),
    bbox_head=dict(type="RetinaHead", in_channels=256),
)
