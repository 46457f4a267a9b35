# A short schedule for models trained from scratch on small data: AdamW, cosine decay, 6 epochs.
optimizer = dict(type="AdamW", lr=0.002, weight_decay=0.05)
lr_schedule = dict(policy="cosine", warmup="linear", warmup_iters=100, warmup_ratio=0.01)
train_cfg = dict(max_epochs=6, val_interval=3, grad_clip=dict(max_norm=10, norm_type=2))
