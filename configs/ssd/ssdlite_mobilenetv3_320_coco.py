# SSDlite320 with MobileNetV3-Large on COCO: torchvision's model and recipe (600 epochs of
# cosine decay, lr 0.15 for a total batch of 192 = 24 x 8 GPUs, weight decay 4e-5), but
# starting from its ImageNet MobileNetV3 weights, which need the full last stage.
_base_ = [
    "../_base_/models/ssdlite320_mobilenetv3.py",
    "../_base_/datasets/coco_ssdlite320.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://mobilenet_v3_large"),
    bbox_head=dict(num_classes=80),
)
optimizer = dict(lr=0.15, weight_decay=0.00004)
auto_scale_lr = dict(base_batch_size=192)
lr_schedule = dict(_delete_=True, policy="cosine", warmup="linear", warmup_iters=1000,
                   warmup_ratio=0.001)
train_cfg = dict(max_epochs=600)
