# FoveaBox (Kong et al., 2020) on ResNet-50 FPN P3-P7 (P6/P7 from C5). Base edges, scale ranges,
# the fovea (sigma 0.4), log-space box targets and losses are FoveaHead's defaults (the paper's).
model = dict(
    type="FOVEA",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs="input"),
    bbox_head=dict(type="FoveaHead", in_channels=256),
)
