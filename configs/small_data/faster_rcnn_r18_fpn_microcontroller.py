# Faster R-CNN R18-FPN from scratch on the microcontroller boards in a 20-minute CPU budget (see
# benchmarks/small_data.py).
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small_data.py",
    "../_base_/datasets/microcontroller_detection.py",
    "../_base_/schedules/schedule_small_data_20min.py",
    "../_base_/default_runtime.py",
]
checkpoint = dict(interval=1000, max_keep=1)
log = dict(interval=25)
