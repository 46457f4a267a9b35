# A small RPN (ResNet-18 FPN, from scratch) on the built-in synthetic shapes: the first step of
# the Fast R-CNN example (configs/fast_rcnn/fast_rcnn_r18_fpn_synthetic.py), which trains on the
# proposals this model writes with `detbox test ... --out-proposals`.
_base_ = [
    "../_base_/models/rpn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

evaluation = dict(metric=["proposal"])
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
