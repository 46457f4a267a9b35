# Mask R-CNN R50-FPN fine-tuned on Cityscapes from a COCO model (MMDetection's recipe):
# 8 epochs of the 8x-repeated training set with the LR step at epoch 7, lr 0.01 for a total
# batch of 8 (1 image x 8 GPUs). The heads' 80 COCO classes become the 8 Cityscapes ones:
# `load_from` keeps every weight whose shape fits and re-initialises the class-specific layers.
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn.py",
    "../_base_/datasets/cityscapes_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(init_cfg=dict(backbone_checkpoint="torchvision://resnet50"))
optimizer = dict(lr=0.01)
auto_scale_lr = dict(base_batch_size=8)
lr_schedule = dict(milestones=[7])
train_cfg = dict(max_epochs=8)
# The last checkpoint of configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py.
load_from = "checkpoints/mask_rcnn_r50_fpn_1x_coco.pth"
