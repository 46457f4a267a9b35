# torchvision's ssdlite320_mobilenet_v3_large as a detbox model: its COCO weights after
# `detbox convert-weights torchvision ssdlite320_mobilenet_v3_large IN.pth OUT.pth` (80 COCO
# classes, softmax background moved last) test on COCO val2017 and infer; a small CPU model.
# Its COCO model has MobileNetV3's reduced last stage (torchvision trains it from random
# weights). Training follows torchvision's reference recipe: 600 epochs of cosine decay,
# lr 0.15 for a total batch of 192 (24 x 8 GPUs), weight decay 4e-5.
_base_ = [
    "../_base_/models/ssdlite320_mobilenetv3.py",
    "../_base_/datasets/coco_ssdlite320.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80

model = dict(backbone=dict(reduced_tail=True))
optimizer = dict(lr=0.15, weight_decay=0.00004)
auto_scale_lr = dict(base_batch_size=192)
lr_schedule = dict(_delete_=True, policy="cosine", warmup="linear", warmup_iters=1000,
                   warmup_ratio=0.001)
train_cfg = dict(max_epochs=600)
