# A wall-clock schedule for small datasets on a CPU: AdamW, linear warmup, then cosine decay laid
# over a 20-minute budget (`--max-time` changes it); evaluation and a checkpoint at the end.
optimizer = dict(type="AdamW", lr=0.001, weight_decay=0.05)
lr_schedule = dict(policy="cosine", warmup="linear", warmup_iters=100, warmup_ratio=0.01)
train_cfg = dict(max_epochs=1000, max_time="20m", val_interval=1000,
                 grad_clip=dict(max_norm=10, norm_type=2))
