# torchvision's retinanet_resnet50_fpn as a detbox model, for inference with its weights:
#   sd = convert_torchvision_state_dict("retinanet_resnet50_fpn", tv_model.state_dict())
#   model.load_state_dict(sd)   (detbox.models.convert)
# Labels 0..89 are torchvision's 1..90 (COCO category ids); torchvision's unused sigmoid output
# for index 0 is dropped. Every setting below is torchvision's: P6 and P7 from P5
# (LastLevelP6P7(256, 256)), three rounded anchor sizes per level (x, int(x * 2**(1/3)),
# int(x * 2**(2/3))), score threshold 0.05, 1000 candidates per level, 300 detections.
num_classes = 90

model = dict(
    type="RetinaNet",
    backbone=dict(type="ResNet", depth=50, out_indices=(1, 2, 3), frozen_stages=-1,
                  norm="FrozenBN"),
    neck=dict(type="FPN", in_channels=[512, 1024, 2048], out_channels=256, num_outs=5,
              extra_convs="output", relu_before_extra=True),
    bbox_head=dict(
        type="RetinaHead",
        num_classes=num_classes,
        in_channels=256,
        feat_channels=256,
        stacked_convs=4,
        anchor_generator=dict(
            type="AnchorGenerator", strides=[8, 16, 32, 64, 128], ratios=[0.5, 1.0, 2.0],
            sizes=[[size, int(size * 2 ** (1 / 3)), int(size * 2 ** (2 / 3))]
                   for size in (32, 64, 128, 256, 512)],
            round_base=True),
        assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0,
                      allow_low_quality_matches=True),
        box_coder=dict(type="DeltaXYWHBoxCoder"),
        loss_cls=dict(type="FocalLoss", alpha=0.25, gamma=2.0),
        loss_bbox=dict(type="L1Loss"),
        score_thr=0.05, nms_pre=1000, nms_iou_thr=0.5, max_per_img=300,
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
