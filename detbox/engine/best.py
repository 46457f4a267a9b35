"""Following one validation metric: the best checkpoints to keep, and when to stop early.

``checkpoint=dict(save_best='bbox_mAP', rule='greater', max_keep_best=1)`` keeps the
``max_keep_best`` checkpoints with the best values as ``best_bbox_mAP_epoch_N.pth``;
``train_cfg.patience = P`` stops training after P evaluations in a row that did not beat the
best value so far. The tracker's state travels in every checkpoint, so a resumed run keeps
counting where it stopped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from detbox.errors import ConfigError
from detbox.registry import closest_match

__all__ = ["MetricTracker", "build_tracker"]

_RULES = ("greater", "less")


class MetricTracker:
    """The history of one metric over evaluations.

    Args:
        metric: a key of the evaluation results, e.g. ``'bbox_mAP'`` or ``'val_loss'``.
        rule: ``'greater'`` or ``'less'`` is better; None picks ``'less'`` for names that
            contain ``loss`` and ``'greater'`` otherwise.
        max_keep: best checkpoints to keep (0: none are written; the metric is only watched).
        patience: evaluations in a row without improvement after which training stops; None
            never stops.
        unit: what the positions given to :meth:`observe` count, ``'epoch'`` or ``'iter'``
            (iteration-based training); it names the files ``best_<metric>_<unit>_N.pth``.
    """

    def __init__(self, metric: str, *, rule: str | None = None, max_keep: int = 1,
                 patience: int | None = None, unit: str = "epoch") -> None:
        if rule is None:
            rule = "less" if "loss" in metric else "greater"
        if rule not in _RULES:
            raise ConfigError(f"checkpoint.rule must be 'greater' or 'less', got {rule!r}")
        if max_keep < 0 or (patience is not None and patience < 1):
            raise ConfigError(f"need checkpoint.max_keep_best >= 0 and train_cfg.patience >= 1, "
                              f"got {max_keep} and {patience}")
        self.metric = metric
        self.rule = rule
        self.max_keep = int(max_keep)
        self.patience = patience
        self.unit = unit
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_evaluations = 0
        self.kept: list[dict[str, Any]] = []  # {'score', 'epoch', 'file'}, best first

    def _better(self, score: float, than: float | None) -> bool:
        if than is None:
            return True
        return score > than if self.rule == "greater" else score < than

    def score_of(self, metrics: Mapping[str, Any]) -> float:
        """The tracked value in ``metrics``.

        Raises:
            ConfigError: the evaluation has no such scalar metric (naming the closest one).
        """
        value = metrics.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            scalars = [k for k, v in metrics.items() if isinstance(v, (int, float))]
            match = closest_match(self.metric, scalars)
            hint = f" Did you mean '{match}'?" if match else ""
            raise ConfigError(
                f"checkpoint.save_best = '{self.metric}' is not a metric of the evaluation.{hint} "
                f"Its metrics: {', '.join(scalars) or '(none)'}"
            )
        return float(value)

    def observe(self, metrics: Mapping[str, Any], epoch: int) -> bool:
        """Record an evaluation; returns whether it should be saved as a best checkpoint."""
        score = self.score_of(metrics)
        if not math.isfinite(score):
            self.bad_evaluations += 1
            return False
        if self._better(score, self.best_score):
            self.best_score, self.best_epoch = score, epoch
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
        if self.max_keep == 0:
            return False
        return len(self.kept) < self.max_keep or self._better(score, self.kept[-1]["score"])

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evaluations >= self.patience

    def file_name(self, epoch: int) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", self.metric)
        return f"best_{safe}_{self.unit}_{epoch}.pth"

    def keep(self, file: str, score: float, epoch: int) -> list[str]:
        """Add a written best checkpoint; returns the files that fell out of the best ones."""
        self.kept.append({"score": score, "epoch": epoch, "file": file})
        self.kept.sort(key=lambda k: k["score"], reverse=self.rule == "greater")
        dropped, self.kept = self.kept[self.max_keep:], self.kept[: self.max_keep]
        return [entry["file"] for entry in dropped]

    def best_checkpoint(self, metrics: Mapping[str, Any], position: int
                        ) -> tuple[str | None, list[str]]:
        """Record an evaluation at ``position`` (in :attr:`unit`); returns the best
        checkpoint file to write (None when it does not rank) and the files to delete."""
        if not self.observe(metrics, position):
            return None, []
        file = self.file_name(position)
        return file, self.keep(file, self.score_of(metrics), position)

    def describe_stop(self) -> str:
        where = "epoch" if self.unit == "epoch" else "iteration"
        best = (f"best {self.best_score:.4f} at {where} {self.best_epoch}"
                if self.best_score is not None else "no finite value yet")
        return (f"early stopping: {self.metric} has not improved for {self.bad_evaluations} "
                f"evaluation(s) (patience {self.patience}); {best}")

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "rule": self.rule, "best_score": self.best_score,
                "best_epoch": self.best_epoch, "bad_evaluations": self.bad_evaluations,
                "kept": [dict(entry) for entry in self.kept]}

    def load_state_dict(self, state: Mapping[str, Any]) -> bool:
        """Restore a saved history; returns False (and keeps a fresh one) when it tracked
        another metric or rule."""
        if state.get("metric") != self.metric or state.get("rule") != self.rule:
            return False
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]
        self.bad_evaluations = int(state["bad_evaluations"])
        self.kept = [dict(entry) for entry in state.get("kept", [])][: max(self.max_keep, 0)]
        return True


def build_tracker(metric: str | None, *, rule: str | None = None, max_keep: int = 1,
                  patience: int | None = None, has_evaluation: bool = True,
                  unit: str = "epoch") -> MetricTracker | None:
    """The tracker for ``checkpoint.save_best`` (None without one).

    Raises:
        ConfigError: ``patience`` without a metric to watch, or a metric without evaluation.
    """
    if metric is None:
        if patience is not None:
            raise ConfigError("train_cfg.patience needs a metric to watch: set "
                              "checkpoint.save_best (e.g. 'bbox_mAP' or 'val_loss')")
        return None
    if not has_evaluation:
        raise ConfigError(f"checkpoint.save_best='{metric}' needs an evaluation: add a "
                          "val_dataloader")
    return MetricTracker(metric, rule=rule, max_keep=max_keep, patience=patience, unit=unit)
