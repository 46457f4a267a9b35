# The small Faster R-CNN of configs/faster_rcnn/faster_rcnn_r18_fpn_synthetic.py (same FPN,
# heads, data, schedule and seed, trained from scratch) on timm's ResNet-18-D (deep stem,
# average-pool shortcuts) instead of detbox's ResNet-18: the comparison of benchmarks/RESULTS.md.
# Needs timm: pip install "detbox[timm]".
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

# timm's levels 1-4 are C2-C5 (strides 4-32, 64-512 channels, read by the FPN); BN trains.
model = dict(
    backbone=dict(_delete_=True, type="TimmBackbone", model_name="resnet18d",
                  out_indices=(1, 2, 3, 4)),
)

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
