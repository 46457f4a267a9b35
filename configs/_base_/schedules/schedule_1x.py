# The standard 1x schedule: 12 epochs, LR steps at epochs 8 and 11, linear warmup.
# lr=0.02 is for a total batch of 16 (2 images x 8 GPUs); scale it linearly with the batch.
optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
lr_schedule = dict(policy="step", milestones=[8, 11], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=12, val_interval=1)
