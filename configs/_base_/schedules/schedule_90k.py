# The Detectron2-style 90k-iteration schedule (its "1x" on COCO): counted in iterations, LR steps
# at iterations 60k and 80k, linear warmup over the first 1000 iterations from 0.001 x the LR.
# lr=0.02 is for a total batch of 16 (2 images x 8 GPUs); `detbox train --auto-scale-lr` scales it.
# A recipe using it also sets checkpoint.interval in iterations (default_runtime's 1 would
# write a checkpoint every iteration).
optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
auto_scale_lr = dict(base_batch_size=16, enable=False)
lr_schedule = dict(policy="step", milestones=[60000, 80000], gamma=0.1,
                   warmup="linear", warmup_iters=1000, warmup_ratio=0.001)
train_cfg = dict(by_epoch=False, max_iters=90000, val_interval=5000)
