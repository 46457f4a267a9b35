# Cascade R-CNN on the synthetic shapes: the small Faster R-CNN of
# faster_rcnn_r18_fpn_synthetic.py (same backbone, data and schedule) with its RoI head
# replaced by three box stages at IoU 0.5 / 0.6 / 0.7 (CascadeRoIHead's defaults).
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(type="CascadeRCNN", roi_head=dict(type="CascadeRoIHead"))
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
