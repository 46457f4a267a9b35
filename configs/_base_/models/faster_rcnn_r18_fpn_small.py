# A small Faster R-CNN for CPU training from scratch on 128 px images: ResNet-18 with trainable
# BN, a 64-channel FPN P2-P5, lighter RPN and RoI heads (the box part of
# mask_rcnn_r18_fpn_small.py). The rest is the code's defaults.
model = dict(
    type="FasterRCNN",
    backbone=dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                  norm="BN", norm_eval=False),
    neck=dict(type="FPN", out_channels=64, num_outs=4, extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(type="AnchorGenerator", strides=[4, 8, 16, 32], scales=[4]),
        train_proposals=dict(nms_pre=1000, max_per_img=300),
        test_proposals=dict(nms_pre=500, max_per_img=100),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", sampling_ratio=2),
        bbox_head=dict(type="Shared2FCBBoxHead", in_channels=64, fc_channels=256),
        sampler=dict(type="RandomSampler", num=128, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)
