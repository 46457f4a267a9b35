# Faster R-CNN, ResNet-50 C4: the backbone stops at C4 (stride 16); the RPN and the RoI head read
# C4 alone, and the RoI head runs ResNet's res5 on 14x14 RoIs (the box-only twin of
# mask_rcnn_r50_c4.py); init_cfg=dict(backbone_checkpoint=...) initializes both the backbone
# and res5 (from the checkpoint's layer4.*).
model = dict(
    type="FasterRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(2,), num_stages=3),
    rpn_head=dict(
        type="RPNHead",
        in_channels=1024,
        feat_channels=1024,
        anchor_generator=dict(type="AnchorGenerator", strides=[16], scales=[2, 4, 8, 16, 32]),
        train_proposals=dict(nms_pre=12000, max_per_img=2000),
        test_proposals=dict(nms_pre=6000, max_per_img=1000),
    ),
    roi_head=dict(
        type="Res5RoIHead",
        depth=50,
        bbox_head=dict(type="ConvFCBBoxHead", in_channels=2048, with_avg_pool=True, num_fcs=0),
    ),
)
