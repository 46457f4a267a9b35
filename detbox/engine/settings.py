"""The trainer's settings, one frozen dataclass per config section.

Each class mirrors one section of a training config: :class:`TrainSettings` is ``train_cfg``,
:class:`CheckpointSettings` is ``checkpoint``, :class:`LogSettings` is ``log``,
:class:`EMASettings` is ``ema`` and :class:`RuntimeSettings` gathers the top-level ``amp``,
``auto_scale_lr``, ``sync_bn`` and ``cpu_fast_path``.
``from_config`` reads a section and checks it: an unknown key names the closest valid one, and a
value of the wrong type or outside its range is one error line naming the key's path (e.g.
``train_cfg.max_epochs``), the value and what is expected. Settings built in code are checked
the same way when constructed.

A field whose metadata says ``config=False`` is set by code only (e.g. the progress bar, which
follows the terminal) and is not a key of its section.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from detbox.errors import ConfigError
from detbox.registry import closest_match

__all__ = ["CheckpointSettings", "EMASettings", "LogSettings", "RuntimeSettings",
           "TrainSettings"]

_S = TypeVar("_S", bound="_Section")
# A range check: (test on a value of the right type, what is expected, in words).
_Range = tuple[Callable[[Any], bool], str]


def _type_matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (simple types, unions, containers)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_type_matches(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    base = origin or hint
    if base in (Mapping, dict):
        return isinstance(value, Mapping)
    if base in (Sequence, list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, base)


def _type_words(hint: Any) -> str:
    """``int | None`` -> ``'an integer or None'``."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_words(arg) for arg in typing.get_args(hint))
    base = origin or hint
    words = {bool: "True or False", int: "an integer", float: "a number", str: "a string",
             type(None): "None", Mapping: "a dict", dict: "a dict", Sequence: "a list",
             list: "a list", tuple: "a list"}
    return words.get(base, getattr(base, "__name__", str(base)))


class _Section:
    """What every settings class shares: reading its config section and checking values."""

    SECTION: ClassVar[str] = ""
    RANGES: ClassVar[dict[str, _Range]] = {}

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        self.check_values(values, self.SECTION)

    @classmethod
    def config_keys(cls) -> list[str]:
        """The keys the config section accepts, in field order."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("config", True)]

    @classmethod
    def check_values(cls, values: Mapping[str, Any], name: str) -> None:
        """Raise ConfigError for the first value of the wrong type or out of range.

        Args:
            values: field name -> value.
            name: the section's path in the config (``''`` for top-level keys).
        """
        hints = typing.get_type_hints(cls)
        for key, value in values.items():
            path = f"{name}.{key}" if name else key
            if not _type_matches(value, hints[key]):
                raise ConfigError(f"{path} must be {_type_words(hints[key])}, got {value!r} "
                                  f"({type(value).__name__})")
            check = cls.RANGES.get(key)
            if check is not None and value is not None and not check[0](value):
                raise ConfigError(f"{path} must be {check[1]}, got {value!r}")

    @classmethod
    def from_config(cls: type[_S], section: Mapping[str, Any] | None, name: str | None = None
                    ) -> _S:
        """Settings from a config section; keys it leaves out keep their defaults.

        Args:
            section: the section (a dict), or None for all defaults.
            name: its path in the config, used in error messages (default: the usual one).

        Raises:
            ConfigError: an unknown key (naming the closest valid one), or a value of the
                wrong type or out of range (naming the key's path, the value and what fits).
        """
        name = cls.SECTION if name is None else name
        if section is not None and not isinstance(section, Mapping):
            raise ConfigError(f"{name or 'the config'} must be a dict, got {section!r}")
        values = dict(section or {})
        accepted = cls.config_keys()
        for key in values:
            if key not in accepted:
                match = closest_match(str(key), accepted)
                hint = f" Did you mean '{match}'?" if match else ""
                where = f"config section '{name}'" if name else "the config"
                raise ConfigError(f"{where} got an unknown key '{key}'.{hint} Valid keys: "
                                  f"{', '.join(accepted)}")
        cls.check_values(values, name)
        return cls(**values)


def _at_least(low: int) -> _Range:
    return (lambda value: value >= low), f"an integer >= {low}"


def _valid_duration(value: Any) -> bool:
    from detbox.engine.time_budget import parse_duration

    try:
        parse_duration(value)
    except ConfigError:
        return False
    return True


def _valid_divergence(value: Mapping[str, Any] | bool) -> bool:
    """``True``, ``False`` or a dict of ``factor`` (> 1), ``window`` (>= 2) and ``patience``
    (>= 1), each optional."""
    if isinstance(value, bool):
        return True
    checks = {
        "factor": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 1,
        "window": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2,
        "patience": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    }
    return all(key in checks and checks[key](v) for key, v in value.items())


@dataclass(frozen=True)
class TrainSettings(_Section):
    """The ``train_cfg`` section: how long and how each step updates.

    Training is counted in epochs (``by_epoch=True``, the default) or in iterations
    (``by_epoch=False`` with ``max_iters``, as in MMDetection's ``IterBasedTrainLoop``); the
    unit applies to ``val_interval``, ``checkpoint.interval`` and the LR milestones. A
    ``max_time`` budget replaces the length: training ends when the budget is spent.

    Attributes:
        max_epochs: length of training in epochs (default 12; only with ``by_epoch=True``).
        by_epoch: count in epochs; False counts in iterations (optimizer steps).
        max_iters: length of training in iterations (only with ``by_epoch=False``, which
            needs it).
        max_time: a wall-clock budget, ``'20m'``, ``'90s'``, ``'1h30m'`` or seconds: training
            stops when it is spent (also mid-epoch) and the LR schedule is laid over it
            (see :mod:`detbox.engine.time_budget`); ``max_epochs`` / ``max_iters`` then only
            place the LR milestones.
        val_interval: evaluate every this many epochs, or iterations with ``by_epoch=False``
            (and at the end; 0: only at the end).
        grad_clip: ``dict(max_norm=..., norm_type=2)`` or None.
        accumulate_steps: loader batches per optimizer step (their mean gradient is applied).
        patience: stop after this many evaluations without a better ``checkpoint.save_best``
            value; None never stops early.
        divergence: warn when the loss explodes while still finite: True (default:
            ``dict(factor=100, window=50, patience=3)``, i.e. above 100x the median of the last
            50 steps for 3 steps in a row), False (off) or a dict overriding those keys.
    """

    SECTION: ClassVar[str] = "train_cfg"
    RANGES: ClassVar[dict[str, _Range]] = {
        "max_epochs": _at_least(1), "max_iters": _at_least(1), "val_interval": _at_least(0),
        "max_time": (_valid_duration, "a duration such as '20m', '90s', '1h30m' or a number "
                     "of seconds > 0"),
        "accumulate_steps": _at_least(1), "patience": _at_least(1),
        "divergence": (_valid_divergence, "True, False or a dict with factor (a number > 1), "
                       "window (an integer >= 2) and patience (an integer >= 1)"),
    }

    max_epochs: int | None = None
    by_epoch: bool = True
    max_iters: int | None = None
    max_time: str | int | float | None = None
    val_interval: int = 1
    grad_clip: Mapping[str, Any] | None = None
    accumulate_steps: int = 1
    patience: int | None = None
    divergence: Mapping[str, Any] | bool = True

    DEFAULT_MAX_EPOCHS: ClassVar[int] = 12

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.by_epoch:
            if self.max_iters is not None:
                raise ConfigError(
                    f"train_cfg.max_iters={self.max_iters} counts iterations, but training "
                    "counts epochs: add train_cfg.by_epoch=False (and drop max_epochs), or "
                    "set train_cfg.max_epochs instead")
            if self.max_epochs is None:
                object.__setattr__(self, "max_epochs", self.DEFAULT_MAX_EPOCHS)
            return
        if self.max_epochs is not None:
            raise ConfigError(
                f"train_cfg.by_epoch=False counts iterations, but train_cfg.max_epochs="
                f"{self.max_epochs} is set too (from a base schedule?): give the length as "
                "max_iters alone (max_epochs=None, or train_cfg=dict(_delete_=True, ...))")
        if self.max_iters is None:
            raise ConfigError("train_cfg.by_epoch=False needs train_cfg.max_iters, the length "
                              "of training in iterations (e.g. max_iters=90000)")

    @property
    def max_time_seconds(self) -> float | None:
        """``max_time`` in seconds (None without a budget)."""
        if self.max_time is None:
            return None
        from detbox.engine.time_budget import parse_duration

        return parse_duration(self.max_time)


@dataclass(frozen=True)
class CheckpointSettings(_Section):
    """The ``checkpoint`` section: which checkpoints are written and kept.

    Attributes:
        interval: save every this many epochs (and after the last; 0: only the last).
        max_keep: ``epoch_N.pth`` files kept (0 or None: all).
        save_best: keep the checkpoints with the best value of this metric as
            ``best_<metric>_epoch_N.pth``.
        rule: ``'greater'`` or ``'less'`` is better (None: ``'less'`` for losses).
        max_keep_best: best checkpoints kept (0: the metric is only watched).
    """

    SECTION: ClassVar[str] = "checkpoint"
    RANGES: ClassVar[dict[str, _Range]] = {
        "interval": _at_least(0), "max_keep": _at_least(0), "max_keep_best": _at_least(0),
        "rule": ((lambda value: value in ("greater", "less")), "'greater' or 'less'"),
    }

    interval: int = 1
    max_keep: int | None = 3
    save_best: str | None = None
    rule: str | None = None
    max_keep_best: int = 1


@dataclass(frozen=True)
class LogSettings(_Section):
    """The ``log`` section: how often and where training reports.

    Attributes:
        interval: log every this many iterations (and at each epoch's end).
        tensorboard: also write TensorBoard events (``work_dir/tensorboard``).
        num_vis_images: validation images whose predictions go to TensorBoard.
        vis_score_thr: score threshold of the drawn predictions.
        progress_bar: a tqdm bar per epoch; None shows it on a terminal (not a config key).
    """

    SECTION: ClassVar[str] = "log"
    RANGES: ClassVar[dict[str, _Range]] = {
        "interval": _at_least(1), "num_vis_images": _at_least(0),
        "vis_score_thr": ((lambda value: 0 <= value <= 1), "a number in [0, 1]"),
    }

    interval: int = 50
    tensorboard: bool = False
    num_vis_images: int = 4
    vis_score_thr: float = 0.3
    progress_bar: bool | None = field(default=None, metadata={"config": False})


@dataclass(frozen=True)
class RuntimeSettings(_Section):
    """How the computation runs: the top-level ``amp``, ``auto_scale_lr``, ``sync_bn`` and
    ``cpu_fast_path`` keys.

    Attributes:
        amp: mixed precision, see :func:`detbox.engine.amp.build_amp`.
        auto_scale_lr: ``dict(base_batch_size=16, enable=True)``: scale the optimizer's ``lr``
            by the total batch, see :func:`detbox.engine.optim.scale_lr`.
        sync_bn: use ``SyncBatchNorm`` when several GPU processes train.
        cpu_fast_path: on CPU, train with channels-last maps and oneDNN GEMMs (see
            :mod:`detbox.engine.cpu_training`); same values up to float rounding.
        find_unused_parameters: passed to ``DistributedDataParallel`` (not a config key).
    """

    SECTION: ClassVar[str] = ""

    amp: Mapping[str, Any] | bool | None = None
    auto_scale_lr: Mapping[str, Any] | None = None
    sync_bn: bool = False
    cpu_fast_path: bool = True
    find_unused_parameters: bool = field(default=False, metadata={"config": False})


@dataclass(frozen=True)
class EMASettings(_Section):
    """The ``ema`` section: an exponential moving average of the weights is evaluated and
    saved (absent or None: no average). See :mod:`detbox.engine.ema` for the rule.

    The defaults are those of the ``ExpMomentumEMA`` of the YOLOX and RTMDet recipes.

    Attributes:
        momentum: the weight of the newest weights once the warmup is over (0.0002: an
            average over about 5000 updates).
        gamma: the warmup's time constant in updates: the weight of the newest weights
            starts near 1 and decays towards ``momentum`` as ``exp(-n / gamma)``.
        update_interval: average every this many optimizer steps.
        buffers: ``'copy'`` the BatchNorm running statistics (and other buffers) from the
            trained model, or ``'average'`` them like the parameters.
    """

    SECTION: ClassVar[str] = "ema"
    RANGES: ClassVar[dict[str, _Range]] = {
        "momentum": ((lambda value: 0 < value < 1), "a number in (0, 1)"),
        "gamma": ((lambda value: value > 0), "a number > 0"),
        "update_interval": _at_least(1),
        "buffers": ((lambda value: value in ("copy", "average")), "'copy' or 'average'"),
    }

    momentum: float = 0.0002
    gamma: float = 2000
    update_interval: int = 1
    buffers: str = "copy"
