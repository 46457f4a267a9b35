# A small Grid R-CNN (ResNet-18 FPN, trained from scratch) on the built-in synthetic shapes,
# sized like configs/mask_rcnn/mask_rcnn_r18_fpn_synthetic.py: 128 px images, 64-channel FPN,
# the box head only classifies and a light grid head (4 convs, 16 channels per point) places
# the boxes.
_base_ = [
    "../_base_/models/mask_rcnn_r18_fpn_small.py",
    "../_base_/datasets/synthetic_detection.py",
    "../_base_/schedules/schedule_adamw_cosine_6e.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="GridRCNN",
    roi_head=dict(
        _delete_=True,
        type="GridRoIHead",
        bbox_roi_extractor=dict(type="MultiLevelRoIExtractor", sampling_ratio=2),
        bbox_head=dict(type="Shared2FCBBoxHead", in_channels=64, fc_channels=256,
                       with_reg=False),
        grid_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14, sampling_ratio=2),
        grid_head=dict(type="GridHead", in_channels=64, num_convs=4, point_channels=16),
        sampler=dict(type="RandomSampler", num=128, pos_fraction=0.25, add_gt_as_proposals=True),
        max_grid_rois=96,
    ),
)
train_cfg = dict(max_epochs=4, val_interval=2)
checkpoint = dict(interval=2, max_keep=2)
log = dict(interval=20)
