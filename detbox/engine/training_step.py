"""One training step and its pieces: the loss call, summing loss terms, the non-finite guard.

Kept apart from the trainer's loop so each piece is small and testable on its own;
:class:`TrainingStep` puts them together for one loader batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from detbox.engine.amp import AmpSettings
from detbox.engine.dist import all_reduce_mean, get_world_size, is_distributed
from detbox.engine.gradient_stepper import micro_batch_position
from detbox.errors import ConfigError, TrainingError
from detbox.registry import closest_match
from detbox.structures import ImageBatch

if TYPE_CHECKING:
    from detbox.engine.training_state import TrainingState

__all__ = [
    "LossForward",
    "TrainingStep",
    "check_grad_clip",
    "non_finite_message",
    "parse_losses",
    "wrap_for_training",
]


class LossForward(nn.Module):
    """Makes ``forward(batch)`` return ``detector.loss(batch)``.

    ``DistributedDataParallel`` synchronises gradients only for work done inside ``forward``,
    while detectors train through ``loss()``; this wrapper routes one into the other.
    """

    is_model_wrapper = True

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: ImageBatch) -> dict[str, Any]:
        return self.module.loss(batch)


def wrap_for_training(
    model: nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> nn.Module:
    """``LossForward(model)``, inside ``DistributedDataParallel`` when a process group is
    running: several ranks, or a world of one that the caller joined (the launcher joins none
    for a single process; ``benchmarks/ddp_world_of_one.py`` does, to run the NCCL path on one
    GPU)."""
    wrapper = LossForward(model)
    if not is_distributed():
        return wrapper
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        wrapper, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def _as_scalar(value: Any, key: str, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        return value.float().mean() if value.numel() != 1 else value.float().reshape(())
    if isinstance(value, Sequence) and value and all(isinstance(v, Tensor) for v in value):
        return sum(v.float().mean() for v in value)
    if isinstance(value, (int, float)):
        return torch.tensor(float(value), device=device)
    raise TrainingError(
        f"model.loss() returned {type(value).__name__} for '{key}'; expected a tensor, a list "
        "of tensors or a number"
    )


def parse_losses(
    losses: Mapping[str, Any], device: torch.device
) -> tuple[Tensor, list[str], Tensor]:
    """Sum the ``loss*`` terms and collect every value for logging.

    Args:
        losses: ``model.loss(batch)``; keys starting with ``loss`` are optimised, the others are
            metrics that are only logged. A tensor with several elements counts as its mean; a
            list of tensors as the sum of their means.
        device: where python-number metrics are placed.

    Returns:
        ``(total, names, values)``: the scalar to backpropagate, then ``['loss', *keys]`` and a
        detached 1-D tensor of the matching values (one device-to-host copy logs them all).

    Raises:
        TrainingError: no ``loss*`` key, or a value of an unsupported type.
    """
    scalars = {key: _as_scalar(value, key, device) for key, value in losses.items()}
    terms = [value for key, value in scalars.items() if key.startswith("loss")]
    if not terms:
        raise TrainingError(
            f"model.loss() returned no key starting with 'loss' (got {sorted(losses)}); "
            "nothing to optimise"
        )
    total = sum(terms[1:], terms[0])
    names = ["loss", *scalars]
    values = torch.stack([total.detach(), *(v.detach() for v in scalars.values())])
    return total, names, values


def non_finite_message(
    *,
    what: str,
    names: list[str],
    values: list[float],
    batch: ImageBatch,
    iteration: int,
    epoch: int,
    max_epochs: int | None,
    index: int,
    iters_per_epoch: int,
    checkpoint: str | None,
) -> str:
    """The one-paragraph explanation raised when a loss or gradient goes NaN/inf.

    Args:
        what: ``'loss'``, ``'loss on another rank'`` or ``'gradient norm'``.
        names: value names, e.g. ``['loss', 'loss_cls', 'loss_bbox']``.
        values: their values (a non-finite one among them).
        batch: the batch that produced them, for its image file names.
        iteration: 1-based global iteration.
        epoch: 1-based epoch.
        max_epochs: length of training (None when it is not counted in epochs).
        index: 1-based iteration within the epoch.
        iters_per_epoch: iterations per epoch.
        checkpoint: the newest checkpoint on disk, if any.
    """
    terms = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, values) if n.startswith("loss"))
    extra = [f"{n}={v:.4g}" for n, v in zip(names, values) if not n.startswith("loss")]
    files = ", ".join(sample.file_name for sample in batch.samples) or "(no samples)"
    kept = f"the last checkpoint ({checkpoint})" if checkpoint else "no checkpoint was written"
    of = f"/{max_epochs}" if max_epochs else ""
    return (
        f"non-finite {what} at iteration {iteration} (epoch {epoch}{of}, "
        f"iter {index}/{iters_per_epoch}): {terms}{'; ' + ', '.join(extra) if extra else ''}; "
        f"images: {files}. Training stopped before the optimizer step, so this batch changed "
        f"no weight and {kept} is intact. Try a lower lr, a longer warmup or grad_clip, and "
        "check these images' annotations (empty or degenerate boxes)."
    )


def check_grad_clip(grad_clip: Mapping[str, Any] | None) -> dict[str, float] | None:
    """Validate ``dict(max_norm=..., norm_type=2.0)``; None disables clipping."""
    if grad_clip is None:
        return None
    accepted = ["max_norm", "norm_type"]
    for key in grad_clip:
        if key not in accepted:
            match = closest_match(key, accepted)
            hint = f" Did you mean '{match}'?" if match else ""
            raise ConfigError(f"grad_clip got an unknown key '{key}'.{hint} Valid keys: max_norm, "
                              "norm_type")
    if "max_norm" not in grad_clip:
        raise ConfigError("grad_clip needs 'max_norm' (e.g. dict(max_norm=35, norm_type=2))")
    return {
        "max_norm": float(grad_clip["max_norm"]),
        "norm_type": float(grad_clip.get("norm_type", 2.0)),
    }


class TrainingStep:
    """Runs one loader batch: forward under autocast, the non-finite guard, backward, and at
    the end of each accumulation group the clipped optimizer step and the update of the
    weights' moving average (``state.ema``).

    A loss that is non-finite on any rank stops every rank at the same iteration, before the
    optimizer step, so no weight changes.

    Args:
        state: the run's state; its schedule, optimizer, stepper and iteration count are used
            and the iteration count advances with each optimizer step.
        loss_module: ``loss_module(batch) -> dict[str, Tensor]`` (the DDP wrapper, if any).
        amp: the mixed-precision settings.
        device: where batches go.
        batches_per_epoch: loader batches per epoch.
        max_epochs: length of training in epochs, if it is one (for messages).
    """

    def __init__(self, *, state: TrainingState, loss_module: nn.Module, amp: AmpSettings,
                 device: torch.device, batches_per_epoch: int, max_epochs: int | None) -> None:
        self.state = state
        self.loss_module = loss_module
        self.amp = amp
        self.device = device
        self.batches_per_epoch = batches_per_epoch
        self.max_epochs = max_epochs

    def __call__(self, batch: ImageBatch, epoch: int, index: int, last_checkpoint: Any = None
                 ) -> tuple[dict[str, float], bool]:
        """Run loader batch ``index`` (0-based) of ``epoch`` (0-based).

        Returns:
            The values to log (all-rank means, plus ``grad_norm`` after a step) and whether
            the optimizer stepped.

        Raises:
            TrainingError: a non-finite loss, or a non-finite gradient norm that the fp16 loss
                scaler does not handle; it names ``last_checkpoint`` as intact.
        """
        state, stepper = self.state, self.state.stepper
        first, last, group_size = micro_batch_position(index, self.batches_per_epoch,
                                                       stepper.accumulate_steps)
        if first:
            progress = state.budget.progress if state.budget is not None else None
            state.scheduler.apply(state.iteration, progress)
            state.optimizer.zero_grad(set_to_none=True)
        batch = batch.to(self.device)
        where = (batch, epoch, index, last_checkpoint)
        with stepper.sync_context(last):
            with self.amp.autocast():
                losses = self.loss_module(batch)
            total, names, values = parse_losses(losses, self.device)
            local, averaged = self._check_losses(names, values, where)
            stepper.backward(total, group_size)
        logged = dict(zip(names, averaged))
        if not last:
            return logged, False
        norm = stepper.clip()
        if norm is not None and math.isfinite(norm):
            logged["grad_norm"] = norm
        elif norm is not None and not stepper.tolerates_non_finite_gradients():
            self._raise_non_finite("gradient norm", [*names, "grad_norm"], [*local, norm], where)
        if stepper.step() and state.ema is not None:  # a step fp16 skipped changed nothing
            state.ema.update(state.model)
        state.iteration += 1
        return logged, True

    def _check_losses(self, names: list[str], values: Tensor, where: tuple
                      ) -> tuple[list[float], list[float]]:
        """This rank's and the all-rank mean values; raises when a loss is non-finite on any
        rank, so every rank stops at the same iteration."""
        local = values.tolist()
        averaged = all_reduce_mean(values).tolist() if get_world_size() > 1 else local
        is_loss = [name.startswith("loss") for name in names]
        if not all(math.isfinite(v) for v, loss in zip(averaged, is_loss) if loss):
            local_ok = all(math.isfinite(v) for v, loss in zip(local, is_loss) if loss)
            what = "loss on another rank" if local_ok else "loss"
            self._raise_non_finite(what, names, averaged if local_ok else local, where)
        return local, averaged

    def _raise_non_finite(self, what: str, names: list[str], values: list[float],
                          where: tuple) -> None:
        batch, epoch, index, last_checkpoint = where
        self.state.optimizer.zero_grad(set_to_none=True)
        raise TrainingError(non_finite_message(
            what=what, names=names, values=values, batch=batch,
            iteration=self.state.iteration + 1, epoch=epoch + 1, max_epochs=self.max_epochs,
            index=index + 1, iters_per_epoch=self.batches_per_epoch,
            checkpoint=str(last_checkpoint) if last_checkpoint else None,
        ))
