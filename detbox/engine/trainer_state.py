"""What the trainer writes to and reads back from checkpoints, and how it looks at its loader.

Kept apart from the loop in ``trainer.py``: saving gathers every rank's random state and lets
rank 0 write the files (regular, latest, best); restoring puts weights, optimizer, schedule,
counters, random states, the loss scaler and the best-metric history back, so a resumed run
continues exactly, on any number of processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from detbox.engine.checkpoint import (
    LoadReport,
    checkpoint_name,
    extract_state_dict,
    find_latest,
    link_or_copy,
    load_checkpoint,
    load_weights,
    remove_old_checkpoints,
    save_checkpoint,
    update_latest,
)
from detbox.engine.dist import (
    all_gather_object,
    get_rank,
    get_world_size,
    is_main_process,
    unwrap_model,
)
from detbox.engine.logger import describe_environment
from detbox.engine.seed import get_rng_state, set_rng_state
from detbox.engine.training_step import check_weights_finite
from detbox.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from detbox.engine.trainer import Trainer

__all__ = [
    "describe_run",
    "load_pretrained",
    "loader_batch_size",
    "loader_length",
    "restore_training_state",
    "save_training_state",
    "set_loader_epoch",
]


def loader_length(loader: Any) -> int:
    """Batches per epoch of a training loader."""
    try:
        length = len(loader)
    except TypeError:
        raise ConfigError("the train loader needs a length (iterations per epoch)") from None
    if length < 1:
        raise ConfigError("the train loader yields no batch: is the training set empty?")
    return length


def loader_batch_size(loader: Any) -> int | None:
    """Images per batch of one process, when the loader or its batch sampler says."""
    for source in (getattr(loader, "batch_sampler", None), loader):
        size = getattr(source, "batch_size", None)
        if isinstance(size, int):
            return size
    return None


def set_loader_epoch(loader: Any, epoch: int) -> None:
    """``loader.set_epoch(epoch)`` when the loader has it (it forwards to its samplers), else
    ``set_epoch`` on each of its samplers that has it."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
        return
    batch_sampler = getattr(loader, "batch_sampler", None)
    candidates = [batch_sampler, getattr(batch_sampler, "sampler", None),
                  getattr(loader, "sampler", None)]
    seen: set[int] = set()
    for sampler in candidates:
        if sampler is not None and id(sampler) not in seen and hasattr(sampler, "set_epoch"):
            seen.add(id(sampler))
            sampler.set_epoch(epoch)


def describe_run(trainer: Trainer, notes: list[str | None]) -> list[str]:
    """The lines that open a run's log: environment, schedule, batch sizes and notes."""
    lines = describe_environment(unwrap_model(trainer.model), trainer.device, trainer.seed,
                                 trainer.deterministic)
    world = get_world_size()
    per_process = loader_batch_size(trainer.train_loader)
    accumulate = trainer.stepper.accumulate_steps
    batch = (f"total batch {per_process * world * accumulate} = {per_process} per process x "
             f"{world} process(es) x {accumulate} accumulation step(s)" if per_process else
             f"{world} process(es) x {accumulate} accumulation step(s)")
    lines.append(
        f"training {trainer.max_epochs} epochs x {trainer.iters_per_epoch} iterations "
        f"({trainer.batches_per_epoch} batches per epoch), {batch}, optimizer "
        f"{type(trainer.optimizer).__name__}, world size {world}, work_dir {trainer.work_dir}"
    )
    if world > 1:
        lines.append(f"rank r seeds its generators with {trainer.seed} + r")
    return lines + [note for note in notes if note]


def save_training_state(trainer: Trainer, *, regular: bool, best_file: str | None,
                        dropped: list[str]) -> None:
    """Write this epoch's checkpoints; every rank calls it (the random states are gathered).

    Args:
        trainer: the trainer whose state is saved.
        regular: write ``epoch_N.pth``, point ``latest.pth`` at it and rotate old ones.
        best_file: also write this best checkpoint (a hard link to ``epoch_N.pth`` when both
            are written).
        dropped: best checkpoints that fell out of the kept ones, to delete.
    """
    check_weights_finite(trainer.model, trainer.epoch, trainer.last_checkpoint)
    state = get_rng_state()
    generator = getattr(trainer.train_loader, "generator", None)
    if isinstance(generator, torch.Generator):
        state["loader_generator"] = generator.get_state()
    states = all_gather_object(state)
    paths = [trainer.work_dir / checkpoint_name(trainer.epoch)] if regular else []
    paths += [trainer.work_dir / best_file] if best_file else []
    if is_main_process():
        extra = {"amp": trainer.stepper.state_dict(),
                 "best": trainer.tracker.state_dict() if trainer.tracker else None}
        save_checkpoint(
            paths[0], model=trainer.model, optimizer=trainer.optimizer,
            scheduler=trainer.scheduler, epoch=trainer.epoch, iteration=trainer.iteration,
            meta=trainer.meta, rng_state=states, extra=extra,
        )
        for path in paths[1:]:
            link_or_copy(paths[0], path)
        if regular:
            update_latest(trainer.work_dir, paths[0])
            remove_old_checkpoints(trainer.work_dir, trainer.max_keep_checkpoints)
        for name in dropped:
            (trainer.work_dir / name).unlink(missing_ok=True)
        trainer.logger.info("saved checkpoint " + ", ".join(str(p) for p in paths))
    if regular:
        trainer.last_checkpoint = paths[0]


def _load_states(trainer: Trainer, checkpoint: dict[str, Any], path: Any) -> None:
    try:
        unwrap_model(trainer.model).load_state_dict(checkpoint["state_dict"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path} does not fit this model or optimizer, so it cannot be resumed "
            f"(use load_from to fine-tune from it): {str(exc).strip()[:800]}"
        ) from exc
    if "scheduler" in checkpoint:
        saved = [float(lr) for lr in checkpoint["scheduler"]["base_lrs"]]
        if saved != trainer.scheduler.base_lrs:
            trainer.logger.warning(
                f"{path} trained with base lr {saved[0]:g}, this config gives "
                f"{trainer.scheduler.base_lrs[0]:g} (auto_scale_lr or a changed optimizer); "
                "the checkpoint's is kept, so the run continues as it was"
            )
        trainer.scheduler.load_state_dict(checkpoint["scheduler"])
    if isinstance(checkpoint.get("amp"), dict):
        trainer.stepper.load_state_dict(checkpoint["amp"])
    best = checkpoint.get("best")
    if trainer.tracker is not None and isinstance(best, dict):
        if not trainer.tracker.load_state_dict(best):
            trainer.logger.warning(f"{path} tracked {best.get('metric')} ({best.get('rule')}); "
                                   f"save_best now tracks {trainer.tracker.metric} afresh")


def _restore_rng(trainer: Trainer, states: list[dict[str, Any]] | None, path: Any) -> None:
    if not states:
        trainer.logger.warning(f"{path} has no RNG state; data order may differ from the run")
        return
    rank = get_rank()
    if len(states) != get_world_size():
        trainer.logger.warning(
            f"{path} was saved by {len(states)} process(es), resuming with "
            f"{get_world_size()}: random augmentation will not repeat exactly"
        )
    state = states[rank] if rank < len(states) else states[0]
    set_rng_state(state)
    generator = getattr(trainer.train_loader, "generator", None)
    if isinstance(generator, torch.Generator) and "loader_generator" in state:
        generator.set_state(state["loader_generator"])


def restore_training_state(trainer: Trainer, path: str | os.PathLike) -> bool:
    """The body of :meth:`Trainer.resume`; see there."""
    if str(path) == "auto":
        found = find_latest(trainer.work_dir)
        if found is None:
            trainer.logger.info(f"no checkpoint in {trainer.work_dir} to resume; starting fresh")
            return False
        path = found
    checkpoint = load_checkpoint(path, map_location="cpu")
    for key in ("state_dict", "optimizer", "epoch", "iteration"):
        if key not in checkpoint:
            raise CheckpointError(
                f"{path} is not a training checkpoint (no '{key}'); to start from its "
                "weights only, use load_from / --load-from instead"
            )
    _load_states(trainer, checkpoint, path)
    trainer.epoch, trainer.iteration = int(checkpoint["epoch"]), int(checkpoint["iteration"])
    _restore_rng(trainer, checkpoint.get("rng"), path)
    if trainer.iteration != trainer.epoch * trainer.iters_per_epoch:
        trainer.logger.warning(
            f"{path} was saved with another number of iterations per epoch "
            f"({trainer.iteration} iterations in {trainer.epoch} epochs, now "
            f"{trainer.iters_per_epoch} per epoch); the LR schedule follows the iteration count"
        )
    trainer.last_checkpoint = Path(path)
    trainer.logger.info(f"resumed from {path}: epoch {trainer.epoch}, iteration "
                        f"{trainer.iteration}")
    return True


def load_pretrained(trainer: Trainer, path: str | os.PathLike) -> LoadReport:
    """The body of :meth:`Trainer.load_from`; see there."""
    report = load_weights(trainer.model, extract_state_dict(load_checkpoint(path)))
    if not report.loaded:
        raise CheckpointError(f"no weight in {path} matches the model:\n{report}")
    log = trainer.logger.warning if report.skipped else trainer.logger.info
    log(f"weights from {path}: {report}")
    return report
