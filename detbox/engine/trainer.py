"""The epoch-based training loop.

The trainer receives built objects (model, train loader, evaluation callable) and plain
settings; building those from a config is the caller's job. It owns what happens between them:
per-iteration learning rates, gradient clipping, the non-finite-loss guard, checkpoints that
resume exactly, evaluation and logging. It runs unchanged on one process or under
``torch.distributed`` (one process per GPU), where rank 0 alone logs and writes files.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detbox.engine.checkpoint import (
    LoadReport,
    checkpoint_name,
    extract_state_dict,
    find_latest,
    load_checkpoint,
    load_weights,
    remove_old_checkpoints,
    save_checkpoint,
    update_latest,
)
from detbox.engine.dist import (
    all_gather_object,
    all_reduce_mean,
    get_rank,
    get_world_size,
    is_main_process,
    resolve_device,
    unwrap_model,
)
from detbox.engine.logger import (
    TrainLogger,
    WindowMeter,
    describe_environment,
    format_eta,
    plain_metric,
)
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.optim import build_optimizer
from detbox.engine.seed import (
    get_rng_state,
    make_seed,
    preserved_rng_state,
    set_random_seed,
    set_rng_state,
)
from detbox.engine.step import (
    check_grad_clip,
    check_weights_finite,
    non_finite_message,
    parse_losses,
    wrap_for_training,
)
from detbox.errors import CheckpointError, ConfigError, TrainingError
from detbox.structures import ImageBatch

__all__ = ["Trainer"]


def _due(epoch: int, interval: int, max_epochs: int) -> bool:
    """Whether something done every ``interval`` epochs (and after the last) is due."""
    return epoch == max_epochs or (interval > 0 and epoch % interval == 0)


def _loader_length(loader: Any) -> int:
    try:
        length = len(loader)
    except TypeError:
        raise ConfigError("the train loader needs a length (iterations per epoch)") from None
    if length < 1:
        raise ConfigError("the train loader yields no batch: is the training set empty?")
    return length


class Trainer:
    """Trains a detector for ``max_epochs`` epochs.

    Args:
        model: a detector with ``loss(batch) -> dict[str, Tensor]``; moved to ``device``.
        train_loader: yields :class:`ImageBatch`; its ``batch_sampler``/``sampler`` get
            ``set_epoch(epoch)`` (0-based) each epoch when they have it.
        optimizer_cfg: see :func:`detbox.engine.optim.build_optimizer`.
        lr_schedule_cfg: see :func:`detbox.engine.lr_schedule.build_lr_schedule`.
        max_epochs: length of training.
        work_dir: where logs and checkpoints go.
        device: ``'cpu'``, ``'cuda'`` (this rank's GPU) or an explicit device.
        evaluate_fn: ``evaluate_fn(model) -> {metric: value}``, called in eval mode on every
            rank (distributed evaluation gathers inside it).
        val_interval: evaluate every this many epochs (and after the last; 0: only the last).
        checkpoint_interval: save every this many epochs (and after the last; 0: only the last).
        max_keep_checkpoints: ``epoch_N.pth`` files kept (0 or None: all).
        log_interval: log every this many iterations (and at each epoch's end).
        grad_clip: ``dict(max_norm=..., norm_type=2)`` or None.
        meta: JSON-able data stored in every checkpoint (config, class names, category ids).
        seed: seeds Python, numpy and torch; None draws one, which is logged.
        deterministic: request deterministic kernels (see :func:`set_random_seed`).
        find_unused_parameters: passed to ``DistributedDataParallel``.
        progress_bar: a tqdm bar per epoch; None shows it on a terminal.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        train_loader: Any,
        optimizer_cfg: Mapping[str, Any],
        lr_schedule_cfg: Mapping[str, Any] | None,
        max_epochs: int,
        work_dir: str | os.PathLike,
        device: str | torch.device = "cpu",
        evaluate_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
        val_interval: int = 1,
        checkpoint_interval: int = 1,
        max_keep_checkpoints: int | None = 3,
        log_interval: int = 50,
        grad_clip: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        seed: int | None = None,
        deterministic: bool = False,
        find_unused_parameters: bool = False,
        progress_bar: bool | None = None,
    ) -> None:
        if max_epochs < 1 or log_interval < 1:
            raise ConfigError(f"need max_epochs >= 1 and log_interval >= 1, got "
                              f"{max_epochs} and {log_interval}")
        self.work_dir = Path(work_dir)
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.seed = make_seed() if seed is None else int(seed)
        self.deterministic = deterministic
        set_random_seed(self.seed, deterministic)
        self.train_loader = train_loader
        self.iters_per_epoch = _loader_length(train_loader)
        self.max_epochs = int(max_epochs)
        self.model = model.to(self.device)
        self.loss_module = wrap_for_training(self.model, self.device, find_unused_parameters)
        self.optimizer = build_optimizer(self.model, optimizer_cfg)
        self.scheduler = build_lr_schedule(
            self.optimizer, lr_schedule_cfg,
            iters_per_epoch=self.iters_per_epoch, max_epochs=self.max_epochs,
        )
        self.grad_clip = check_grad_clip(grad_clip)
        self.evaluate_fn = evaluate_fn
        self.val_interval = int(val_interval)
        self.checkpoint_interval = int(checkpoint_interval)
        self.max_keep_checkpoints = max_keep_checkpoints
        self.log_interval = int(log_interval)
        self.meta = dict(meta or {})
        self.epoch = 0  # completed epochs
        self.iteration = 0  # completed iterations
        self.last_checkpoint: Path | None = None
        self._timer_start = (time.perf_counter(), 0)
        self.logger = TrainLogger(self.work_dir, progress_bar=progress_bar)
        self._log_environment()

    # ----------------------------------------------------------------- setup and restore

    def _log_environment(self) -> None:
        model = unwrap_model(self.model)
        for line in describe_environment(model, self.device, self.seed, self.deterministic):
            self.logger.info(line)
        self.logger.info(
            f"training {self.max_epochs} epochs x {self.iters_per_epoch} iterations, optimizer "
            f"{type(self.optimizer).__name__}, world size {get_world_size()}, "
            f"work_dir {self.work_dir}"
        )

    def resume(self, path: str | os.PathLike) -> bool:
        """Continue from a training checkpoint: weights, optimizer, LR schedule, counters, RNGs.

        Args:
            path: a checkpoint file, or ``'auto'`` for the newest one in ``work_dir``.

        Returns:
            False when ``'auto'`` found no checkpoint (training starts from scratch).

        Raises:
            CheckpointError: unreadable, not a training checkpoint, or not this model's.
        """
        if str(path) == "auto":
            found = find_latest(self.work_dir)
            if found is None:
                self.logger.info(f"no checkpoint in {self.work_dir} to resume; starting fresh")
                return False
            path = found
        checkpoint = load_checkpoint(path, map_location="cpu")
        for key in ("state_dict", "optimizer", "epoch", "iteration"):
            if key not in checkpoint:
                raise CheckpointError(
                    f"{path} is not a training checkpoint (no '{key}'); to start from its "
                    "weights only, use load_from / --load-from instead"
                )
        try:
            unwrap_model(self.model).load_state_dict(checkpoint["state_dict"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{path} does not fit this model or optimizer, so it cannot be resumed "
                f"(use load_from to fine-tune from it): {str(exc).strip()[:800]}"
            ) from exc
        if "scheduler" in checkpoint:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.epoch, self.iteration = int(checkpoint["epoch"]), int(checkpoint["iteration"])
        self._restore_rng(checkpoint.get("rng"), path)
        if self.iteration != self.epoch * self.iters_per_epoch:
            self.logger.warning(
                f"{path} was saved with another number of iterations per epoch "
                f"({self.iteration} iterations in {self.epoch} epochs, now "
                f"{self.iters_per_epoch} per epoch); the LR schedule follows the iteration count"
            )
        self.last_checkpoint = Path(path)
        self.logger.info(f"resumed from {path}: epoch {self.epoch}, iteration {self.iteration}")
        return True

    def _restore_rng(self, states: list[dict[str, Any]] | None, path: Any) -> None:
        if not states:
            self.logger.warning(f"{path} has no RNG state; data order may differ from the run")
            return
        rank = get_rank()
        if len(states) != get_world_size():
            self.logger.warning(
                f"{path} was saved by {len(states)} process(es), resuming with "
                f"{get_world_size()}: random augmentation will not repeat exactly"
            )
        state = states[rank] if rank < len(states) else states[0]
        set_rng_state(state)
        generator = getattr(self.train_loader, "generator", None)
        if isinstance(generator, torch.Generator) and "loader_generator" in state:
            generator.set_state(state["loader_generator"])

    def load_from(self, path: str | os.PathLike) -> LoadReport:
        """Start from another checkpoint's weights; keys whose shape differs keep their init.

        Raises:
            CheckpointError: unreadable, or not a single tensor fits the model.
        """
        report = load_weights(self.model, extract_state_dict(load_checkpoint(path)))
        if not report.loaded:
            raise CheckpointError(f"no weight in {path} matches the model:\n{report}")
        log = self.logger.warning if report.skipped else self.logger.info
        log(f"weights from {path}: {report}")
        return report

    # ----------------------------------------------------------------- the loop

    def train(self) -> dict[str, Any]:
        """Run the remaining epochs; returns the final evaluation's metrics ({} without one).

        Raises:
            TrainingError: a non-finite loss or gradient (the message names the iteration, the
                loss terms and the batch's images).
        """
        metrics: dict[str, Any] = {}
        evaluated_at = None
        self._timer_start = (time.perf_counter(), self.iteration)
        try:
            if self.epoch >= self.max_epochs:
                self.logger.info(f"already trained for {self.epoch}/{self.max_epochs} epochs")
            for epoch in range(self.epoch, self.max_epochs):
                self._train_epoch(epoch)
                self.epoch = epoch + 1
                if _due(self.epoch, self.checkpoint_interval, self.max_epochs):
                    self._save_checkpoint()
                if self.evaluate_fn is not None and _due(
                    self.epoch, self.val_interval, self.max_epochs
                ):
                    metrics, evaluated_at = self._evaluate(), self.epoch
            if self.evaluate_fn is not None and evaluated_at != self.epoch:
                metrics = self._evaluate()
        except TrainingError as exc:
            self.logger.error(str(exc))
            raise
        finally:
            self.logger.close()
        return metrics

    def _set_sampler_epoch(self, epoch: int) -> None:
        """``loader.set_epoch(epoch)`` when the loader has it (it forwards to its samplers),
        else ``set_epoch`` on each of its samplers that has it."""
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)
            return
        batch_sampler = getattr(self.train_loader, "batch_sampler", None)
        candidates = [batch_sampler, getattr(batch_sampler, "sampler", None),
                      getattr(self.train_loader, "sampler", None)]
        seen: set[int] = set()
        for sampler in candidates:
            if sampler is not None and id(sampler) not in seen and hasattr(sampler, "set_epoch"):
                seen.add(id(sampler))
                sampler.set_epoch(epoch)

    def _train_epoch(self, epoch: int) -> None:
        self.model.train()
        self._set_sampler_epoch(epoch)
        meter = WindowMeter()
        bar = self.logger.progress(self.iters_per_epoch, f"epoch {epoch + 1}/{self.max_epochs}")
        try:
            tick = time.perf_counter()
            for index, batch in enumerate(self.train_loader):
                data_time = time.perf_counter() - tick
                values = self._train_step(batch, epoch, index)
                meter.update({**values, "time": time.perf_counter() - tick,
                              "data_time": data_time})
                lr = self.optimizer.param_groups[0]["lr"]
                if (index + 1) % self.log_interval == 0 or index + 1 == self.iters_per_epoch:
                    self._log_step(meter.average(), lr, epoch, index)
                    meter.reset()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.1e}",
                                    eta=format_eta(self._eta_seconds()))
                tick = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()

    def _train_step(self, batch: ImageBatch, epoch: int, index: int) -> dict[str, float]:
        """One optimizer step; returns the values to log (loss terms, metrics, grad norm)."""
        self.scheduler.apply(self.iteration)
        batch = batch.to(self.device)
        total, names, values = parse_losses(self.loss_module(batch), self.device)
        local = values.tolist()
        averaged = all_reduce_mean(values).tolist() if get_world_size() > 1 else local
        is_loss = [name.startswith("loss") for name in names]
        if not all(math.isfinite(v) for v, loss in zip(averaged, is_loss) if loss):
            local_ok = all(math.isfinite(v) for v, loss in zip(local, is_loss) if loss)
            what = "loss on another rank" if local_ok else "loss"
            self._raise_non_finite(what, names, averaged if local_ok else local, batch, epoch,
                                   index)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        logged = dict(zip(names, averaged))
        if self.grad_clip is not None:
            params = [p for p in self.model.parameters() if p.grad is not None]
            norm = float(torch.nn.utils.clip_grad_norm_(params, **self.grad_clip))
            if not math.isfinite(norm):
                self._raise_non_finite("gradient norm", [*names, "grad_norm"],
                                       [*local, norm], batch, epoch, index)
            logged["grad_norm"] = norm
        self.optimizer.step()
        self.iteration += 1
        return logged

    def _raise_non_finite(self, what: str, names: list[str], values: list[float],
                          batch: ImageBatch, epoch: int, index: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        raise TrainingError(non_finite_message(
            what=what, names=names, values=values, batch=batch, iteration=self.iteration + 1,
            epoch=epoch + 1, max_epochs=self.max_epochs, index=index + 1,
            iters_per_epoch=self.iters_per_epoch,
            checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
        ))

    def _eta_seconds(self) -> float:
        """Time left for the whole run at this run's average speed so far (NaN at first)."""
        started, start_iteration = self._timer_start
        done = self.iteration - start_iteration
        per_iter = (time.perf_counter() - started) / done if done else math.nan
        return per_iter * (self.scheduler.max_iters - self.iteration)

    def _log_step(self, averages: dict[str, float], lr: float, epoch: int, index: int) -> None:
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "iter": index + 1,
            "step": self.iteration,
            "lr": lr,
            "eta_seconds": self._eta_seconds(),
            **averages,
        }
        if self.device.type == "cuda":
            record["memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.logger.log_train(record, self.max_epochs, self.iters_per_epoch)

    # ----------------------------------------------------------------- epoch-end work

    def _save_checkpoint(self) -> None:
        check_weights_finite(self.model, self.epoch, self.last_checkpoint)
        state = get_rng_state()
        generator = getattr(self.train_loader, "generator", None)
        if isinstance(generator, torch.Generator):
            state["loader_generator"] = generator.get_state()
        states = all_gather_object(state)
        path = self.work_dir / checkpoint_name(self.epoch)
        if is_main_process():
            save_checkpoint(
                path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                epoch=self.epoch, iteration=self.iteration, meta=self.meta, rng_state=states,
            )
            update_latest(self.work_dir, path)
            remove_old_checkpoints(self.work_dir, self.max_keep_checkpoints)
            self.logger.info(f"saved checkpoint {path}")
        self.last_checkpoint = path

    def _evaluate(self) -> dict[str, Any]:
        model = unwrap_model(self.model)
        model.eval()
        try:
            with preserved_rng_state(), torch.no_grad():
                raw = self.evaluate_fn(model)
        finally:
            model.train()
        metrics = {key: plain_metric(value) for key, value in dict(raw or {}).items()}
        self.logger.log_val(self.epoch, metrics)
        return metrics
