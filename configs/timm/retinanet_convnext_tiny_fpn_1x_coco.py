# RetinaNet on a timm ConvNeXt-T (Liu et al., 2022) with FPN P3-P7, the 1x COCO schedule (12
# epochs, steps at 8 and 11). Needs timm: pip install "detbox[timm]".
# Batch 16 in total (2 images x 8 GPUs); with another total batch, --auto-scale-lr scales the lr.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/coco_detection.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

# The backbone replaces the ResNet-50 whole (_delete_); the FPN reads its in_channels (192, 384,
# 768 for timm's levels 1-3, strides 8-32) from it, so the neck needs no edit.
# ImageNet weights come from a local file, never downloaded during training: save timm's
# classification weights once where there is network access,
#   python -c "import timm, torch; torch.save(timm.create_model('convnext_tiny',
#              pretrained=True).state_dict(), 'checkpoints/convnext_tiny.pth')"
# and the backbone loads them (strictly) before training; pretrained_file=None trains from scratch.
model = dict(
    backbone=dict(_delete_=True, type="TimmBackbone", model_name="convnext_tiny",
                  out_indices=(1, 2, 3), pretrained_file="checkpoints/convnext_tiny.pth",
                  model_kwargs=dict(drop_path_rate=0.2)),
    bbox_head=dict(num_classes=80),
)

# ConvNeXt trains with AdamW (weight decay 0.05, none on norms), as in the paper's detection
# experiments; the focal loss with gradient clipping as in the ResNet recipe.
optimizer = dict(_delete_=True, type="AdamW", lr=0.0001, weight_decay=0.05, norm_decay_mult=0.0)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
