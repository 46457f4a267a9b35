"""Training from a config: builds data, model and evaluator, then hands them to the Trainer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from detbox.apis.build import build_detector, check_section, fill_num_classes
from detbox.apis.testing import evaluate_detector
from detbox.config import ConfigDict, config_to_jsonable, dump_config
from detbox.errors import ConfigError

__all__ = ["train_detector", "TRAIN_DEFAULTS"]

logger = logging.getLogger(__name__)

TRAIN_DEFAULTS = {"max_epochs": 12, "val_interval": 1, "grad_clip": None}
CHECKPOINT_DEFAULTS = {"interval": 1, "max_keep": 3}
LOG_DEFAULTS = {"interval": 50}
EVAL_DEFAULTS = {"metric": ["bbox"], "classwise": True}


def _check_same_classes(train_set, val_set) -> None:
    if list(train_set.class_names) != list(val_set.class_names):
        raise ConfigError(
            f"the validation data ({val_set.ann_file}) has classes {list(val_set.class_names)} "
            f"but the training data ({train_set.ann_file}) has {list(train_set.class_names)}; "
            "use the same categories in both annotation files or set class_names in both datasets"
        )


def _make_evaluate_fn(cfg: ConfigDict, train_set, device: torch.device, seed: int):
    from detbox.data import build_dataloader

    if not cfg.get("val_dataloader"):
        return None
    settings = check_section(cfg.get("evaluation"), EVAL_DEFAULTS, "evaluation")
    loader = build_dataloader(cfg.val_dataloader, seed=seed, training=False)
    _check_same_classes(train_set, loader.dataset)
    metrics = settings["metric"]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)

    def evaluate(model: torch.nn.Module) -> Mapping[str, float]:
        return evaluate_detector(model, loader, device, metrics, settings["classwise"])

    return evaluate


def train_detector(
    cfg: ConfigDict,
    *,
    work_dir: str | Path,
    device: torch.device,
    resume: str | None = None,
    load_from: str | None = None,
    seed: int | None = None,
    deterministic: bool = False,
) -> dict[str, Any]:
    """Train the detector that ``cfg`` describes and return the last evaluation's metrics."""
    from detbox.data import build_dataloader
    from detbox.engine import Trainer, set_random_seed

    seed = int(cfg.get("seed", 0) if seed is None else seed)
    cfg["seed"] = seed
    set_random_seed(seed, deterministic=deterministic)
    work_dir = Path(work_dir)
    train_loader = build_dataloader(cfg.train_dataloader, seed=seed, training=True)
    train_set = train_loader.dataset
    fill_num_classes(cfg, list(train_set.class_names), source=str(train_set.ann_file))
    train_cfg = check_section(cfg.get("train_cfg"), TRAIN_DEFAULTS, "train_cfg")
    ckpt_cfg = check_section(cfg.get("checkpoint"), CHECKPOINT_DEFAULTS, "checkpoint")
    log_cfg = check_section(cfg.get("log"), LOG_DEFAULTS, "log")
    work_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, work_dir / "config.json")

    model = build_detector(cfg.model, train_set.class_names, train_set.cat_ids).to(device)
    trainer = Trainer(
        model=model,
        train_loader=train_loader,
        optimizer_cfg=cfg.optimizer.to_dict(),
        lr_schedule_cfg=dict(cfg.get("lr_schedule") or {}),
        max_epochs=train_cfg["max_epochs"],
        work_dir=work_dir,
        device=device,
        evaluate_fn=_make_evaluate_fn(cfg, train_set, device, seed),
        val_interval=train_cfg["val_interval"],
        checkpoint_interval=ckpt_cfg["interval"],
        max_keep_checkpoints=ckpt_cfg["max_keep"],
        log_interval=log_cfg["interval"],
        grad_clip=train_cfg["grad_clip"],
        meta={
            "config": config_to_jsonable({k: v for k, v in cfg.items() if k != "_filename"}),
            **model.dataset_meta,
        },
        seed=seed,
    )
    if resume:
        trainer.resume(resume)
    elif load_from:
        trainer.load_from(load_from)
    return trainer.train()
