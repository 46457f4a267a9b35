# The 2x schedule: 24 epochs, LR steps at epochs 16 and 22 (otherwise as the 1x schedule).
optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
auto_scale_lr = dict(base_batch_size=16, enable=False)
lr_schedule = dict(policy="step", milestones=[16, 22], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=24, val_interval=1)
