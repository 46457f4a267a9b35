# A small RPN for CPU training from scratch on 128 px images: ResNet-18 with trainable BN and a
# 64-channel FPN P2-P5, as in mask_rcnn_r18_fpn_small.py (the proposals of a Fast R-CNN).
model = dict(
    type="RPN",
    backbone=dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                  norm="BN", norm_eval=False),
    neck=dict(type="FPN", out_channels=64, num_outs=4, extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32], scales=[4]),
        test_proposals=dict(nms_pre=1000, max_per_img=300),
    ),
)
