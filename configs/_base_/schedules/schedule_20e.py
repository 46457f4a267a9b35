# The 20e schedule of the cascade recipes: 20 epochs, LR steps at epochs 16 and 19.
optimizer = dict(type="SGD", lr=0.02, momentum=0.9, weight_decay=0.0001)
auto_scale_lr = dict(base_batch_size=16, enable=False)
lr_schedule = dict(policy="step", milestones=[16, 19], gamma=0.1,
                   warmup="linear", warmup_iters=500, warmup_ratio=0.001)
train_cfg = dict(max_epochs=20, val_interval=1)
