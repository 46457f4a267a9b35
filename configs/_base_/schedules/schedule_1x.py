# The standard 1x schedule: 12 epochs, LR steps at epochs 8 and 11, linear warmup.
# lr=0.02 is for a total batch of 16 (2 images x 8 GPUs): auto_scale_lr records it, and
# `detbox train --auto-scale-lr` scales lr linearly to the run's total batch.
optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
auto_scale_lr = dict(base_batch_size=16, enable=False)
lr_schedule = dict(policy="step", milestones=[8, 11], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=12, val_interval=1)
