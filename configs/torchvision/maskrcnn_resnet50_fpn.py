# torchvision's maskrcnn_resnet50_fpn as a detbox model: its COCO weights after
# `detbox convert-weights torchvision maskrcnn_resnet50_fpn IN.pth OUT.pth` (80 COCO classes)
# test on COCO val2017, infer, and fine-tune (the 1x schedule: lr 0.02 for a total batch of 16;
# docs/finetune.md starts from it). The model piece states what matches torchvision.
# The data piece already preprocesses as torchvision does: resize short side 800 / long side at
# most 1333 (bilinear), ImageNet mean/std, zero padding to a multiple of 32 (the loaders' and
# inference's size divisor, torchvision's size_divisible).
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn_torchvision.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80
