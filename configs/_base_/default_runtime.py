# Checkpoints, logging and seed shared by every training recipe.
checkpoint = dict(interval=1, max_keep=3)
log = dict(interval=50)
seed = 0
