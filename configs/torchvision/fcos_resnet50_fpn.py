# torchvision's fcos_resnet50_fpn as a detbox model: its COCO weights after
# `detbox convert-weights torchvision fcos_resnet50_fpn IN.pth OUT.pth` (80 COCO classes;
# torchvision's unused output for index 0 is dropped) test on COCO val2017, infer, and fine-tune.
# The data pieces preprocess as torchvision does (short side 800 / long side 1333, ImageNet
# mean/std, zero padding to a multiple of 32).
# Below, what differs from FCOSHead's defaults (the first paper) to match torchvision, which
# follows the improved FCOS: centre sampling (radius 1.5), centre-ness on the regression tower,
# distances in strides (relu(x) * stride) without per-level scales, GIoU loss, biased GN tower
# convs; points at the cells' top-left corners with torchvision's stride rule (padded size //
# feature size); score sqrt(p * centre-ness) above 0.2, NMS IoU 0.6.
_base_ = [
    "../_base_/models/fcos_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80

model = dict(
    bbox_head=dict(
        conv_bias=True,
        centerness_on_reg=True,
        norm_on_bbox=True,
        scale_per_level=False,
        point_generator=dict(type="PointGenerator", strides=[8, 16, 32, 64, 128], offset=0.0,
                             strides_from_sizes=True),
        assigner=dict(type="FCOSAssigner", center_sampling=True),
        loss_bbox=dict(type="GIoULoss"),
        score_mode="sqrt",
        score_thr=0.2,
        nms_iou_thr=0.6,
    ),
)
optimizer = dict(lr=0.01)
