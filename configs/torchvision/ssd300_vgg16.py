# torchvision's ssd300_vgg16 as a detbox model: its COCO weights after
# `detbox convert-weights torchvision ssd300_vgg16 IN.pth OUT.pth` (80 COCO classes; the
# softmax background moves from index 0 to last) test on COCO val2017, infer, and fine-tune.
# The data pieces preprocess as torchvision's SSD: bilinear resize to 300 x 300 ignoring the
# aspect ratio, mean (0.48235, 0.45882, 0.40784) * 255 and std 1 on 0-255 pixels, no padding.
# SSDVGG and SSDHead's defaults are torchvision's model (priors scales 0.07 .. 1.05 with steps
# 8 .. 300, per class the 400 best of score > 0.01, NMS 0.45, 200 detections), so nothing
# below restates them. Training follows torchvision's reference recipe: SGD lr 0.002 for a
# total batch of 32, weight decay 5e-4, 120 epochs with steps at 80 and 110.
_base_ = [
    "../_base_/models/ssd300.py",
    "../_base_/datasets/coco_ssd300.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80

model = dict(init_cfg=dict(backbone_checkpoint="torchvision://vgg16_features"))
train_dataloader = dict(batch_size=4)
optimizer = dict(lr=0.002, weight_decay=0.0005)
auto_scale_lr = dict(base_batch_size=32)
lr_schedule = dict(milestones=[80, 110], warmup_iters=1000)
train_cfg = dict(max_epochs=120)
