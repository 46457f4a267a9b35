# A small Faster R-CNN (ResNet-18 FPN, trained from scratch) on the built-in synthetic shapes,
# sized to train on a CPU in minutes: the baseline of the Cascade R-CNN synthetic recipe (same
# backbone, data and schedule).
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
