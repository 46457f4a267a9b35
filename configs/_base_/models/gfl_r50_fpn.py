# GFL (Li et al., 2020) on ResNet-50 FPN P3-P7 (P6/P7 from P5): ATSS's anchors and assigner,
# Quality Focal Loss on a joint class-quality score, Distribution Focal Loss on box sides as
# distributions over 17 bins (reg_max 16) and GIoU: GFLHead's defaults (the paper's).
model = dict(
    type="GFL",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs="output"),
    bbox_head=dict(type="GFLHead", in_channels=256),
)
