# A small Fast R-CNN for CPU training from scratch on 128 px images: the backbone, FPN and box
# head of mask_rcnn_r18_fpn_small.py on pre-computed proposals (no RPN).
model = dict(
    type="FastRCNN",
    backbone=dict(type="ResNet", depth=18, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                  norm="BN", norm_eval=False),
    neck=dict(type="FPN", out_channels=64, num_outs=4, extra_convs=None),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", sampling_ratio=2),
        bbox_head=dict(type="Shared2FCBBoxHead", in_channels=64, fc_channels=256),
        sampler=dict(type="RandomSampler", num=128, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)
