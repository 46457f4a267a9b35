# Mask R-CNN R18-FPN from scratch on Penn-Fudan in a 20-minute CPU budget (see
# benchmarks/small_data.py): the small-data Faster R-CNN plus a light mask branch. Pedestrians are
# tall: anchors of aspect 1, 2 and 3 (h / w).
_base_ = [
    "../_base_/models/faster_rcnn_r18_fpn_small_data.py",
    "../_base_/datasets/pennfudan_instance.py",
    "../_base_/schedules/schedule_small_data_20min.py",
    "../_base_/default_runtime.py",
]
model = dict(
    type="MaskRCNN",
    rpn_head=dict(anchor_generator=dict(ratios=[1.0, 2.0, 3.0])),
    roi_head=dict(
        mask_roi_extractor=dict(type="MultiLevelRoIExtractor", output_size=14,
                                featmap_strides=[8, 16, 32], sampling_ratio=2),
        mask_head=dict(type="FCNMaskHead", in_channels=128, num_convs=2, conv_channels=128),
    ),
)
checkpoint = dict(interval=1000, max_keep=1)
log = dict(interval=25)
