# SSD300 (VGG-16) on COCO, MMDetection's recipe: SGD lr 2e-3 (momentum 0.9, weight decay 5e-4)
# for a total batch of 64 (8 images x 8 GPUs), 120 epochs with steps at 80 and 110, 500 warmup
# iterations (MMDetection runs 24 epochs over the train set repeated 5 times, steps at 16 and
# 22: the same iterations). The data base is the paper's augmentation at 300 x 300.
_base_ = [
    "../_base_/models/ssd300.py",
    "../_base_/datasets/coco_ssd300.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# torchvision's VGG-16 "features" weights: they expect 0-255 pixels minus the mean, std 1.
model = dict(
    init_cfg=dict(backbone_checkpoint="torchvision://vgg16_features"),
    bbox_head=dict(num_classes=80),
)
optimizer = dict(lr=0.002, weight_decay=0.0005)
auto_scale_lr = dict(base_batch_size=64)
lr_schedule = dict(milestones=[80, 110])
train_cfg = dict(max_epochs=120)
