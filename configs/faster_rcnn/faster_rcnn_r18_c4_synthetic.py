# A plain C4 Faster R-CNN (ResNet-18, trained from scratch) on the built-in synthetic shapes:
# the baseline that configs/tridentnet/tridentnet_r18_c4_synthetic.py is measured against
# (same backbone, data and schedule).
_base_ = [
    "../_base_/models/faster_rcnn_r18_c4_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=10)
