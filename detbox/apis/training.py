"""Training from a config: builds data, model and evaluator, then hands them to the Trainer.

Under ``torch.distributed`` every process calls :func:`train_detector`; each builds its shard
of the training and validation data (``batch_size`` is per process, as in MMDetection) and the
Trainer keeps the model replicas in step. Only rank 0 writes the config dump, logs and
checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detbox.apis.build import build_detector, check_section, fill_num_classes
from detbox.apis.evaluate import evaluate_detector
from detbox.config import ConfigDict, config_to_jsonable, dump_config
from detbox.data.base import write_label_map
from detbox.errors import ConfigError

__all__ = ["train_detector"]

logger = logging.getLogger(__name__)

EVAL_DEFAULTS = {"metric": ["bbox"], "classwise": True, "val_loss": False, "backend": None}


def _check_same_classes(train_set, val_set) -> None:
    if list(train_set.class_names) != list(val_set.class_names):
        raise ConfigError(
            f"the validation data ({val_set.ann_file}) has classes {list(val_set.class_names)} "
            f"but the training data ({train_set.ann_file}) has {list(train_set.class_names)}; "
            "use the same categories in both annotation files or set class_names in both datasets"
        )


def _make_evaluate_fn(cfg: ConfigDict, loader, device: torch.device):
    """``evaluate(model)``: COCO metrics of this rank's shard gathered on rank 0, plus the
    validation loss (``evaluation.val_loss=True``) averaged over every rank."""
    from detbox.engine.amp import build_amp
    from detbox.engine.val_loss import compute_val_loss

    settings = check_section(cfg.get("evaluation"), EVAL_DEFAULTS, "evaluation")
    metrics = settings["metric"]
    metrics = [metrics] if isinstance(metrics, str) else list(metrics or [])
    if not metrics and not settings["val_loss"]:
        raise ConfigError("evaluation has nothing to compute: set evaluation.metric (e.g. "
                          "['bbox']) or evaluation.val_loss=True, or remove val_dataloader")
    amp = build_amp(cfg.get("amp"), device)

    def evaluate(model: torch.nn.Module) -> Mapping[str, Any]:
        results: dict[str, Any] = {}
        if metrics:
            results.update(evaluate_detector(model, loader, device, metrics,
                                             settings["classwise"], settings["backend"]))
        if settings["val_loss"]:
            results.update(compute_val_loss(model, loader, device, amp.autocast()))
        return results

    return evaluate


def _make_visualize_fn(dataset, device: torch.device, count: int, score_thr: float
                       ) -> Callable[[torch.nn.Module], list[tuple[str, np.ndarray]]] | None:
    """Pictures of the model's predictions on the first ``count`` validation images."""
    if count <= 0 or not hasattr(dataset, "get_record"):
        return None
    indices = list(range(min(count, len(dataset))))

    def visualize(model: torch.nn.Module) -> list[tuple[str, np.ndarray]]:
        from PIL import Image

        from detbox.data.collate import collate
        from detbox.data.skipping import UnreadableImage
        from detbox.visualization import draw_instances

        items = {i: dataset[i] for i in indices}
        readable = [i for i in indices if not isinstance(items[i], UnreadableImage)]
        if not readable:
            return []
        batch = collate([items[i] for i in readable]).to(device)
        pictures = []
        for index, sample, prediction in zip(readable, batch.samples, model.predict(batch)):
            with Image.open(dataset.get_record(index)["img_path"]) as image:
                drawn = draw_instances(image, prediction.to("cpu"), dataset.class_names,
                                       score_thr)
            pictures.append((f"{index}_{Path(sample.file_name).stem}", np.asarray(drawn)))
        return pictures

    return visualize


def _validation(cfg: ConfigDict, train_set, device: torch.device, seed: int,
                shard: Mapping[str, int]) -> tuple[Callable | None, Callable | None]:
    """``(evaluate_fn, visualize_fn)`` over this rank's shard of the validation data."""
    from detbox.data import build_dataloader

    if not cfg.get("val_dataloader"):
        return None, None
    val_loader = build_dataloader(cfg.val_dataloader, seed=seed, training=False, **shard)
    _check_same_classes(train_set, val_loader.dataset)
    from detbox.engine.settings import LogSettings

    log = LogSettings.from_config(cfg.get("log"))
    visualize_fn = None
    if log.tensorboard:
        visualize_fn = _make_visualize_fn(val_loader.dataset, device, log.num_vis_images,
                                          float(log.vis_score_thr))
    return _make_evaluate_fn(cfg, val_loader, device), visualize_fn


def _trainer_options(cfg: ConfigDict) -> dict[str, Any]:
    """The Trainer keyword arguments that come straight from config sections."""
    from detbox.engine.settings import (
        CheckpointSettings,
        EMASettings,
        LogSettings,
        RuntimeSettings,
        TrainSettings,
    )

    runtime_keys = RuntimeSettings.config_keys()
    return {
        "optimizer_cfg": cfg.optimizer.to_dict(),
        "lr_schedule_cfg": dict(cfg.get("lr_schedule") or {}),
        "train": TrainSettings.from_config(cfg.get("train_cfg")),
        "checkpoint": CheckpointSettings.from_config(cfg.get("checkpoint")),
        "log": LogSettings.from_config(cfg.get("log")),
        "runtime": RuntimeSettings.from_config({k: cfg[k] for k in runtime_keys if k in cfg}),
        "ema": EMASettings.from_config(cfg["ema"]) if cfg.get("ema") is not None else None,
    }


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
    """Train the detector that ``cfg`` describes and return the last evaluation's metrics.

    In a distributed run (the process group already initialised, see
    :func:`detbox.engine.launcher.init_distributed`) ``device`` is this process's device and
    the metrics are rank 0's.
    """
    from detbox.data import build_dataloader
    from detbox.engine import Trainer, get_rank, get_world_size, is_main_process, set_random_seed

    seed = int(cfg.get("seed", 0) if seed is None else seed)
    cfg["seed"] = seed
    set_random_seed(seed, deterministic=deterministic)
    work_dir = Path(work_dir)
    shard = {"rank": get_rank(), "world_size": get_world_size()}
    train_loader = build_dataloader(cfg.train_dataloader, seed=seed, training=True, **shard)
    train_set = train_loader.dataset
    fill_num_classes(cfg, list(train_set.class_names), source=str(train_set.ann_file))
    options = _trainer_options(cfg)
    if is_main_process():
        work_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, work_dir / "config.json")
        write_label_map(work_dir, train_set.class_names, train_set.cat_ids)

    evaluate_fn, visualize_fn = _validation(cfg, train_set, device, seed, shard)
    model = build_detector(cfg.model, train_set.class_names, train_set.cat_ids)
    if not load_from and hasattr(model, "init_weights"):  # --load-from brings every weight
        model.init_weights()
    model = model.to(device)
    trainer = Trainer(
        model=model,
        train_loader=train_loader,
        work_dir=work_dir,
        device=device,
        evaluate_fn=evaluate_fn,
        visualize_fn=visualize_fn,
        meta={
            "config": config_to_jsonable({k: v for k, v in cfg.items() if k != "_filename"}),
            **model.dataset_meta,
        },
        seed=seed,
        deterministic=deterministic,
        **options,
    )
    if resume:
        trainer.resume(resume)
    elif load_from:
        trainer.load_from(load_from)
    return trainer.train()
