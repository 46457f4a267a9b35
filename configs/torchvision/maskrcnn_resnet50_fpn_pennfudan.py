# Fine-tune torchvision's COCO Mask R-CNN (converted with `detbox convert-weights`) on Penn-Fudan
# pedestrians: one class, "person". Start it with `--load-from mask_rcnn_tv.pth`: the box and
# mask predictors, shaped for COCO's 80 classes, are re-initialised for 1; every other weight
# comes from the checkpoint. See docs/finetune.md.
_base_ = [
    "../_base_/models/mask_rcnn_r50_fpn_torchvision.py",
    "../_base_/datasets/coco_instance.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]
num_classes = 1

train_dataloader = dict(
    num_workers=0,
    dataset=dict(ann_file="data/pennfudan/annotations/instances_train.json",
                 img_dir="data/pennfudan/images/"),
)
val_dataloader = dict(
    num_workers=0,
    dataset=dict(ann_file="data/pennfudan/annotations/instances_val.json",
                 img_dir="data/pennfudan/images/"),
)

# One GPU, 2 images per batch: the 1x LR (0.02 for 16 images) scaled linearly to 0.0025.
# 110 training images make 55 iterations per epoch: a short warmup, 6 epochs, one LR step.
optimizer = dict(lr=0.0025)
lr_schedule = dict(milestones=[4], warmup_iters=50)
train_cfg = dict(max_epochs=6)
log = dict(interval=10)
