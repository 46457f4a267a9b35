# A small Mask R-CNN (ResNet-18 FPN, trained from scratch) on the built-in synthetic shapes,
# sized to train on a CPU in minutes: 128 px images, 64-channel FPN P2-P5, light RoI heads.
_base_ = [
    "../_base_/models/mask_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_instance.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
