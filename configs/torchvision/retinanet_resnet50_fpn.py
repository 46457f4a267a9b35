# torchvision's retinanet_resnet50_fpn as a detbox model, for inference with its weights:
#   sd = convert_torchvision_state_dict("retinanet_resnet50_fpn", tv_model.state_dict())
#   model.load_state_dict(sd)   (detbox.models.weight_conversion)
# Labels 0..89 are torchvision's 1..90 (COCO category ids); torchvision's unused sigmoid output for
# index 0 is dropped. Below, only what differs from detbox's defaults, to match torchvision: P6 and
# P7 from P5 (LastLevelP6P7(256, 256)), three rounded anchor sizes per level (x, int(x * 2**(1/3)),
# int(x * 2**(2/3))), score threshold 0.05, 1000 candidates per level, 300 detections.
_base_ = "../_base_/models/retinanet_r50_fpn.py"
num_classes = 90

model = dict(
    backbone=dict(frozen_stages=-1),
    neck=dict(extra_convs="output", relu_before_extra=True),
    bbox_head=dict(
        num_classes=num_classes,
        anchor_generator=dict(
            type="AnchorGenerator", strides=[8, 16, 32, 64, 128],
            sizes=[[size, int(size * 2 ** (1 / 3)), int(size * 2 ** (2 / 3))]
                   for size in (32, 64, 128, 256, 512)],
            round_base=True),
        max_per_img=300,
    ),
)

img_norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
test_pipeline = [
    dict(type="LoadImage"),
    dict(type="Resize", scale=(1333, 800), keep_ratio=True),
    dict(type="Normalize", **img_norm),
    dict(type="PackDetInputs"),
]
