# Cascade Mask R-CNN (Cai & Vasconcelos, 2019): Cascade R-CNN on ResNet-50 FPN with a 4-conv FCN
# mask head per stage (each trained on its stage's positives, weighted like the stage; the last
# one predicts). Box settings as in cascade_rcnn_r50_fpn.py.
model = dict(
    type="CascadeRCNN",
    backbone=dict(type="ResNet", depth=50, out_indices=(0, 1, 2, 3)),
    neck=dict(type="FPN", out_channels=256, num_outs=5, extra_convs=None),
    rpn_head=dict(type="RPNHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0)),
    roi_head=dict(
        type="CascadeRoIHead",
        bbox_head=dict(type="Shared2FCBBoxHead", loss_bbox=dict(type="SmoothL1Loss", beta=1.0)),
        mask_head=dict(type="FCNMaskHead"),
    ),
)
