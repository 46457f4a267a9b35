# A small C4 Faster R-CNN for CPU training from scratch on 128 px images: ResNet-18 up to C4
# (stride 16, trainable BN), an RPN on C4 and res5 as the box head. res5 on every RoI is the
# costly part of a C4 detector, so RoIs are pooled at 8x8 (res5 -> 4x4) and 32 are sampled per
# image. The anchors (16-64 px) cover the synthetic shapes' sizes.
model = dict(
    type="FasterRCNN",
    backbone=dict(type="ResNet", depth=18, out_indices=(2,), num_stages=3, frozen_stages=-1,
                  norm="BN", norm_eval=False),
    rpn_head=dict(
        type="RPNHead",
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(type="AnchorGenerator", strides=[16], scales=[1, 2, 4]),
        train_proposals=dict(nms_pre=1000, max_per_img=300),
        test_proposals=dict(nms_pre=500, max_per_img=100),
    ),
    roi_head=dict(
        type="Res5RoIHead",
        depth=18,
        norm="BN",
        norm_eval=False,
        roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=8, featmap_strides=(16,),
                           sampling_ratio=2),
        bbox_head=dict(type="ConvFCBBoxHead", in_channels=512, roi_size=4, with_avg_pool=True,
                       num_fcs=0),
        sampler=dict(type="RandomSampler", num=32, pos_fraction=0.25, add_gt_as_proposals=True),
    ),
)
