"""Training engine: the trainer, checkpoints, optimizer and LR schedule, logging, seeding,
mixed precision and distributed launch."""

from detbox.engine.checkpoint import (
    LoadReport,
    extract_state_dict,
    find_latest,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from detbox.engine.dist import get_rank, get_world_size, is_main_process
from detbox.engine.interrupt import TrainingInterrupted
from detbox.engine.launcher import distributed_session, init_distributed
from detbox.engine.lr_schedule import LRSchedule, build_lr_schedule
from detbox.engine.optim import build_optimizer
from detbox.engine.seed import get_rng_state, set_random_seed, set_rng_state
from detbox.engine.settings import CheckpointSettings, LogSettings, RuntimeSettings, TrainSettings
from detbox.engine.trainer import Trainer
from detbox.engine.training_state import TrainingState
from detbox.engine.val_loss import compute_val_loss

__all__ = [
    "CheckpointSettings",
    "LRSchedule",
    "LoadReport",
    "LogSettings",
    "RuntimeSettings",
    "TrainSettings",
    "Trainer",
    "TrainingInterrupted",
    "TrainingState",
    "build_lr_schedule",
    "build_optimizer",
    "compute_val_loss",
    "distributed_session",
    "extract_state_dict",
    "find_latest",
    "get_rank",
    "get_rng_state",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "set_random_seed",
    "set_rng_state",
]
