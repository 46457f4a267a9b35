# torchvision's ssdlite320_mobilenet_v3_large as a detbox model: its COCO weights after
# `detbox convert-weights torchvision ssdlite320_mobilenet_v3_large IN.pth OUT.pth` (80 COCO
# classes, softmax background moved last) test on COCO val2017 and infer; a small CPU model.
# Below, what differs from SSD300's defaults, as torchvision builds it: MobileNetV3-Large with
# the reduced last stage (its COCO model has it), six levels of priors with ratios 2 and 3
# whose scales run 0.2 .. 0.95 and whose centres spread evenly over each map, depthwise-separable
# predictors, and its test settings (score > 0.001, 300 per class, NMS 0.55, 300 detections).
# Training follows torchvision's reference recipe (600 epochs of cosine decay, lr 0.15 for a
# total batch of 192, weight decay 4e-5) from random weights, as its reduced_tail model does.
_base_ = [
    "../_base_/datasets/coco_ssdlite320.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 80

model = dict(
    type="SSD",
    backbone=dict(type="SSDMobileNetV3", reduced_tail=True),
    bbox_head=dict(
        type="SSDHead",
        depthwise=True,
        prior_generator=dict(type="SSDPriorGenerator", aspect_ratios=[[2, 3]] * 6,
                             min_ratio=0.2, max_ratio=0.95),
        score_thr=0.001, topk=300, nms_iou_thr=0.55, max_per_img=300,
    ),
)
optimizer = dict(lr=0.15, weight_decay=0.00004)
auto_scale_lr = dict(base_batch_size=192)
lr_schedule = dict(_delete_=True, policy="cosine", warmup="linear", warmup_iters=1000,
                   warmup_ratio=0.001)
train_cfg = dict(max_epochs=600)
