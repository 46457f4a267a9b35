# ATSS (Zhang et al., 2020) on ResNet-50 FPN P3-P7 (P6/P7 from P5). One square anchor per
# location, the adaptive sample selection assigner (top 9 per level), GN towers, GIoU loss and
# centre-ness are ATSSHead's defaults (the paper's).
model = dict(
    type="ATSS",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs="output"),
    bbox_head=dict(type="ATSSHead", in_channels=256),
)
