"""How a checkpoint's weights fit a model: partial loading and exact loading.

Training's ``--load-from`` keeps the model's initialisation where shapes differ
(:func:`detbox.engine.checkpoint.load_weights`); for inference every tensor must fit, and when
one does not the user gets one line saying which checkpoint and config disagree, where, and
what to do instead of torch's multi-page ``size mismatch`` traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from detbox.engine.dist import unwrap_model
from detbox.errors import CheckpointError

__all__ = [
    "LoadReport", "compare_weights", "exact_fit", "load_exact_weights", "load_weights",
    "mismatch_message",
]

SHOWN_KEYS = 3
CONFIG_HINT = "the work dir's config.json is the config this checkpoint was trained with"


@dataclass
class LoadReport:
    """What :func:`load_weights` did, key by key.

    Attributes:
        loaded: keys copied into the model.
        mismatched: ``(key, checkpoint shape, model shape)`` of keys skipped for their shape.
        missing: ``(key, model shape)`` of model keys the checkpoint lacks.
        unexpected: ``(key, checkpoint shape)`` of checkpoint keys the model lacks.
    """

    loaded: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    unexpected: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.mismatched) + len(self.missing) + len(self.unexpected)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors, skipped {self.skipped}"]
        lines += [
            f"  shape mismatch (kept the model's initialisation): {key}: checkpoint "
            f"{tuple(ckpt)} vs model {tuple(ours)}"
            for key, ckpt, ours in self.mismatched
        ]
        lines += [f"  missing in checkpoint: {key}: model {tuple(s)}" for key, s in self.missing]
        lines += [
            f"  not in model (ignored): {key}: checkpoint {tuple(s)}" for key, s in self.unexpected
        ]
        return "\n".join(lines)


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy every checkpoint tensor whose key and shape match the model; report the rest.

    This is ``--load-from``: fine-tuning with another number of classes keeps the freshly
    initialised heads whose shapes differ and loads everything else.
    """
    report = compare_weights(model, state_dict)
    accepted = {key: state_dict[key] for key in report.loaded}
    unwrap_model(model).load_state_dict(accepted, strict=False)
    return report


def compare_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Key by key, how ``state_dict`` fits ``model`` (nothing is loaded)."""
    own = unwrap_model(model).state_dict()
    report = LoadReport()
    for key, value in state_dict.items():
        if key not in own:
            report.unexpected.append((key, tuple(value.shape)))
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            report.loaded.append(key)
    report.missing = [(k, tuple(v.shape)) for k, v in own.items() if k not in state_dict]
    return report


def _looks_like_class_count(report: LoadReport) -> bool:
    """Only output layers differ, in their first dimension: another number of classes."""
    return bool(report.mismatched) and not report.missing and not report.unexpected and all(
        len(ckpt) == len(ours) and ckpt[1:] == ours[1:] for _, ckpt, ours in report.mismatched)


def mismatch_message(report: LoadReport, checkpoint: str, config: str | None) -> str:
    """One line: which files disagree, the first mismatched keys with both shapes, the counts
    and the fix (``config`` None: the running training's config)."""
    parts = []
    if report.mismatched:
        shown = "; ".join(f"{key}: checkpoint {tuple(ckpt)} vs model {tuple(ours)}"
                          for key, ckpt, ours in report.mismatched[:SHOWN_KEYS])
        more = len(report.mismatched) - SHOWN_KEYS
        parts.append(f"{len(report.mismatched)} tensor(s) differ in shape ({shown}"
                     f"{f'; and {more} more' if more > 0 else ''})")
    for name, entries in (("missing from the checkpoint", report.missing),
                          ("unexpected in the checkpoint", report.unexpected)):
        if entries:
            keys = ", ".join(key for key, _ in entries[:SHOWN_KEYS])
            parts.append(f"{len(entries)} key(s) {name} (e.g. {keys})")
    if _looks_like_class_count(report):
        fix = ("only the output layers differ, so the checkpoint was trained on another number of "
               f"classes: use the config it was trained with ({CONFIG_HINT}); to fine-tune it "
               f"on new classes, train with --load-from {checkpoint}")
    else:
        fix = (f"the checkpoint was trained with another model; use its config ({CONFIG_HINT}), "
               f"or start training from its matching weights with --load-from {checkpoint}")
    model = f"the model of config {config}" if config else "the model of this run's config"
    return (f"checkpoint {checkpoint} does not fit {model}: "
            f"{', '.join(parts)}. Fix: {fix}")


def exact_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor]
              ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The weights to load exactly and how they fit; BatchNorm's step counter is optional
    both ways, as in torch (frozen BatchNorm has none, older checkpoints may lack it)."""
    own = unwrap_model(model).state_dict()
    state_dict = {k: v for k, v in state_dict.items()
                  if k in own or not k.endswith("num_batches_tracked")}
    report = compare_weights(model, state_dict)
    report.missing = [(k, s) for k, s in report.missing if not k.endswith("num_batches_tracked")]
    return state_dict, report


def load_exact_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                       checkpoint: str, config: str) -> None:
    """Load ``state_dict`` into ``model``; every key and shape must match.

    Args:
        model: the model built from ``config``.
        state_dict: the checkpoint's weights.
        checkpoint: the checkpoint's path, for the message.
        config: the config's path, for the message.

    Raises:
        CheckpointError: one line naming both files, the first mismatched keys with both
            shapes, the missing and unexpected key counts, and the fix.
    """
    state_dict, report = exact_fit(model, state_dict)
    if report.skipped:
        raise CheckpointError(mismatch_message(report, checkpoint, config))
    unwrap_model(model).load_state_dict(state_dict, strict=False)
