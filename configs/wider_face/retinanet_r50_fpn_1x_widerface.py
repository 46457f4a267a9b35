# RetinaNet R50-FPN on WIDER FACE (one class), the 1x schedule (12 epochs, steps at 8 and 11)
# at lr 0.01 for a total batch of 16 (2 images x 8 GPUs), as in MMDetection's recipe.
_base_ = [
    "../_base_/models/retinanet_r50_fpn.py",
    "../_base_/datasets/wider_face.py",
    "../_base_/schedules/schedule_1x.py",
    "../_base_/default_runtime.py",
]

model = dict(init_cfg=dict(backbone_checkpoint="torchvision://resnet50"))
optimizer = dict(lr=0.01)
train_cfg = dict(grad_clip=dict(max_norm=35, norm_type=2))
