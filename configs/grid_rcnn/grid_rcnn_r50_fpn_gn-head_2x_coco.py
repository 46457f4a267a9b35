# Grid R-CNN (Plus), ResNet-50 FPN with the GN grid head, 2x COCO schedule as the authors ran
# it: 25 epochs, LR steps at 17 and 23, a one-epoch linear warm-up from lr/80. The box head only
# classifies (with_reg=False); the grid head (3x3 points, 14x14 RoI features, 56x56 heat maps
# over the twice-enlarged RoI, neighbour feature fusion) places the boxes. Test: score > 0.03,
# class-wise NMS at IoU 0.3 on the proposal boxes, then grid-guided localization.
_base_ = [
    "../_base_/models/faster_rcnn_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_2x.py",
    "../_base_/default_runtime.py",
]

model = dict(
    type="GridRCNN",
    rpn_head=dict(train_proposals=dict(nms_pre=2000, max_per_img=2000)),
    roi_head=dict(
        type="GridRoIHead",
        bbox_head=dict(type="Shared2FCBBoxHead", with_reg=False, score_thr=0.03,
                       nms_iou_thr=0.3),
        grid_head=dict(type="GridHead"),
    ),
    init_cfg=dict(backbone_checkpoint="torchvision://resnet50"),
)
lr_schedule = dict(milestones=[17, 23], warmup_iters=3665, warmup_ratio=0.0125)
train_cfg = dict(max_epochs=25)
