# FCOS (Tian et al., 2019) on ResNet-50 FPN P3-P7 (P6/P7 from P5, ReLU before P7). Points,
# regression ranges, GN towers, IoU loss, centre-ness on the classification tower and the test
# settings are FCOSHead's defaults (the paper's).
model = dict(
    type="FCOS",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs="output"),
    bbox_head=dict(type="FCOSHead", in_channels=256),
)
