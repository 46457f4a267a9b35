# HTC without the semantic branch on the synthetic shapes: the small Mask R-CNN of
# mask_rcnn_r18_fpn_synthetic.py (same backbone, data and schedule) with its RoI head replaced
# by three interleaved box and HTC mask stages linked by the mask information flow.
_base_ = [
    "../_base_/models/mask_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_instance.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="HybridTaskCascade",
    roi_head=dict(type="HTCRoIHead", mask_head=dict(type="HTCMaskHead")),
)
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
