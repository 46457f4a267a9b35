# A small Faster R-CNN on a slim HRNetV2p-W18 (one module per stage, one block per branch)
# with an HRFPN, trained from scratch on the built-in synthetic shapes: the heads, data and
# schedule of configs/faster_rcnn/faster_rcnn_r18_fpn_synthetic.py, sized to train on a CPU.
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

# Random initialization: BN statistics train (norm_eval=False).
model = dict(
    backbone=dict(_delete_=True, type="HRNet", width=18, num_modules=(1, 1, 1),
                  num_blocks=(1, 1, 1, 1), norm_eval=False),
    neck=dict(_delete_=True, type="HRFPN", out_channels=64, num_outs=4),
)

train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
