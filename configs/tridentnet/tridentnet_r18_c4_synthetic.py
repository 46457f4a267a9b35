# TridentNet R18-C4 (trained from scratch) on the built-in synthetic shapes, side by side with
# configs/faster_rcnn/faster_rcnn_r18_c4_synthetic.py (same data, schedule, RPN and res5 head):
# res4 runs as three weight-sharing branches (dilations 1, 2, 3), each trained on the shapes of
# its scale range. The shapes are 16-64 px in 128 px images, so the paper's 800 px ranges
# (0-90, 30-160, 90-) become 0-32, 16-48, 32- (overlapping thirds of the shapes' sizes). As in
# Detectron2's TridentNet-vs-Faster comparison (128 vs 512 RoIs), each branch samples a quarter
# of the baseline's RoIs (8 of 32, half positive): 24 RoIs per image in all against 32.
_base_ = [
    "../_base_/models/faster_rcnn_r18_c4_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="TridentFasterRCNN",
    backbone=dict(type="TridentResNet"),
    roi_head=dict(
        sampler=dict(type="RandomSampler", num=8, pos_fraction=0.5, add_gt_as_proposals=True),
    ),
    branch_ranges=[(0, 32), (16, 48), (32, -1)],
)
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=10)
