# SSD300 (Liu et al., 2016) on VGG-16: conv4_3 (L2-normalised) and fc7 plus four extra levels,
# 8,732 priors, one 3x3 predictor per level; SSDHead's defaults are the paper's (and
# torchvision's) priors, matching, 3:1 hard negative mining and post-processing.
model = dict(
    type="SSD",
    backbone=dict(type="SSDVGG", input_size=300),
    bbox_head=dict(type="SSDHead"),
)
