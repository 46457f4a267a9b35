# torchvision's retinanet_resnet50_fpn as a detbox model: its COCO weights after
# `detbox convert-weights torchvision retinanet_resnet50_fpn IN.pth OUT.pth` (80 COCO classes;
# torchvision's unused sigmoid output for index 0 is dropped) test on COCO val2017, infer, and
# fine-tune (the 1x schedule: lr 0.01 for a total batch of 16, as torchvision's recipe).
# The data pieces already preprocess as torchvision does: resize short side 800 / long side at
# most 1333 (bilinear), ImageNet mean/std, zero padding to a multiple of 32 (the loaders' and
# inference's size divisor, torchvision's size_divisible).
# Below, only what differs from detbox's defaults, to match torchvision: P6 and P7 from P5
# (LastLevelP6P7(256, 256)), three rounded anchor sizes per level (x, int(x * 2**(1/3)),
# int(x * 2**(2/3))) with torchvision's stride rule (padded size // feature size), score
# threshold 0.05, 1000 candidates per level, 300 detections.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80

model = dict(
    neck=dict(extra_convs="output", relu_before_extra=True),
    bbox_head=dict(
        anchor_generator=dict(
            type="AnchorGenerator", strides=[8, 16, 32, 64, 128],
            sizes=[[size, int(size * 2 ** (1 / 3)), int(size * 2 ** (2 / 3))]
                   for size in (32, 64, 128, 256, 512)],
            round_base=True, strides_from_sizes=True),
        max_per_img=300,
    ),
)
optimizer = dict(lr=0.01)
