# TridentNet, ResNet-50 C4, the 1x COCO schedule (Li et al., "Scale-Aware Trident Networks",
# ICCV 2019). res4 runs as three weight-sharing branches (dilations 1, 2, 3) that enter the RPN
# and the res5 head as extra batch entries; each branch trains on the objects of its scale range
# (sqrt(w*h) in 0-90, 30-160, 90- px at 800 px). Tested with the middle branch only
# ("TridentNet Fast"); model.backbone.test_branch_idx=-1 tests with all three, merged by NMS.
# Per branch image: 500 training proposals, 128 sampled RoIs, half of them positive.
_base_ = [
    "../_base_/models/faster_rcnn_r50_c4.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="TridentFasterRCNN",
    backbone=dict(type="TridentResNet"),
    rpn_head=dict(train_proposals=dict(nms_pre=12000, max_per_img=500)),
    roi_head=dict(
        sampler=dict(type="RandomSampler", num=128, pos_fraction=0.5, add_gt_as_proposals=False),
    ),
    # ImageNet weights for the backbone and res5 (frozen stem and stage 1, FrozenBN).
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
