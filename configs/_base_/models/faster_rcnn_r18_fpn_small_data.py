# A Faster R-CNN for small datasets trained on a CPU: ResNet-18 with trainable BN (from scratch by
# default), a 128-channel FPN on C3-C5 plus a pooled P6 (objects in these datasets are large, so
# the stride-4 level, the most expensive one, is left out), one anchor size per level, a light
# RoI head (configs/small_data/mask_rcnn_* add the mask branch). The rest is the code's defaults.
model = dict(
    type="FasterRCNN",
    backbone=dict(type="ResNet", depth=18, out_indices=(1, 2, 3), frozen_stages=-1,
                  norm="BN", norm_eval=False),
    neck=dict(type="FPN", out_channels=128, num_outs=4, extra_convs=None),
    rpn_head=dict(
        type="RPNHead",
        in_channels=128,
        feat_channels=128,
        anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64], scales=[4]),
        train_proposals=dict(nms_pre=1000, max_per_img=500),
        test_proposals=dict(nms_pre=500, max_per_img=100),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", featmap_strides=[8, 16, 32],
                                sampling_ratio=2),
        bbox_head=dict(type="Shared2FCBBoxHead", in_channels=128, fc_channels=512),
        sampler=dict(type="RandomSampler", num=256, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)
