"""FLOPs and parameters per module, counted by torch's own ``FlopCounterMode``.

``FlopCounterMode`` counts the matrix products and convolutions (2 FLOPs per multiply-add) that
dominate a detector's cost. Everything else it sees (element-wise ops, normalization,
interpolation, NMS, RoIAlign) is not counted; :func:`count_flops` lists those ops with how
often they ran, so a reader knows what the total leaves out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, flop_registry

__all__ = ["FlopsReport", "ModuleCost", "count_flops", "format_flops_report", "human"]

# Ops that allocate or describe tensors without computing anything worth counting.
_NO_COMPUTE = {
    "aten.empty", "aten.empty_like", "aten.empty_strided", "aten.zeros", "aten.zeros_like",
    "aten.ones", "aten.ones_like", "aten.full", "aten.full_like", "aten.new_empty",
    "aten.new_zeros", "aten.new_ones", "aten.new_full", "aten.scalar_tensor", "aten.arange",
    "aten.lift_fresh", "aten.clone", "aten.copy_", "aten._to_copy", "aten.detach",
    "aten.contiguous", "aten._local_scalar_dense", "aten.sym_size", "aten.sym_stride",
    "aten.sym_numel", "aten.sym_storage_offset", "aten.is_same_size", "aten.fill_",
    "aten.zero_", "aten.resize_", "aten.set_", "aten._unsafe_view",
}


def _onednn_conv_flops(x_shape, second, third, *rest, out_shape=None,  # noqa: ANN001
                       **kwargs) -> int:
    """``_convolution_pointwise``: (x, w, b, 7 more) or, the binary form, (x, other, w, b, 9
    more)."""
    w_shape = third if len(rest) >= 9 else second
    return conv_flop_count(x_shape, w_shape, out_shape)


def _onednn_conv_into_flops(other_shape, x_shape, w_shape, *rest, out_shape=None,  # noqa: ANN001
                            **kwargs) -> int:
    """``_convolution_pointwise_`` (the binary form writing into ``other``): (other, x, w, b,
    9 more)."""
    return conv_flop_count(x_shape, w_shape, out_shape or other_shape)


def _onednn_deconv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=True)


def _onednn_linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    rows = 1
    for size in x_shape[:-1]:
        rows *= size
    return 2 * rows * w_shape[0] * w_shape[1]


def _nnpack_conv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """``_nnpack_spatial_convolution`` (the one-thread Winograd path): counted as the direct
    convolution it replaces, like every other convolution here."""
    return conv_flop_count(x_shape, w_shape, out_shape)


def _fast_path_formulas() -> dict[Any, Any]:
    """FLOP formulas for the kernels of the inference fast path (oneDNN's, NNPACK's Winograd;
    oneDNN also serves the FPN's fused lateral + sum), which ``FlopCounterMode`` does not
    know."""
    formulas = {torch.ops.aten._nnpack_spatial_convolution: _nnpack_conv_flops}
    if not hasattr(torch.ops, "mkldnn") or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return formulas
    ops = torch.ops.mkldnn
    return {**formulas, ops._convolution_pointwise: _onednn_conv_flops,
            ops._convolution_pointwise_: _onednn_conv_into_flops,
            ops._convolution_transpose_pointwise: _onednn_deconv_flops,
            ops._linear_pointwise: _onednn_linear_flops}


class _UncountedOps(TorchDispatchMode):
    """Counts the calls of every op that has no FLOP formula and does compute something."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.formulas = _fast_path_formulas()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        packet = getattr(func, "overloadpacket", func)
        name = str(packet)
        if packet not in flop_registry and packet not in self.formulas \
                and not getattr(func, "is_view", False) and name not in _NO_COMPUTE:
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))


@dataclass
class ModuleCost:
    """FLOPs (summed over every call) and parameters (counted once) of one module."""

    name: str
    type_name: str
    flops: int
    params: int


@dataclass
class FlopsReport:
    """What :func:`count_flops` measured for one input.

    Attributes:
        input_shape: the (B, 3, H, W) input.
        total_flops: FLOPs of the whole forward pass.
        total_params: parameters of the model.
        modules: per-module costs, in ``named_modules`` order (``""`` is the whole model).
        flops_by_op: total FLOPs per counted op (``aten.convolution``, ``aten.addmm``, ...).
        uncounted_ops: ops without a FLOP formula and how often they ran.
    """

    input_shape: tuple[int, ...]
    total_flops: int
    total_params: int
    modules: list[ModuleCost] = field(default_factory=list)
    flops_by_op: dict[str, int] = field(default_factory=dict)
    uncounted_ops: dict[str, int] = field(default_factory=dict)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _module_flops(
    module: nn.Module, name: str, root: str, traced: dict[str, int], out: dict[str, int]
) -> int:
    """A module's FLOPs as traced when it was called, else the sum of its children's (a
    ``ModuleList`` is never called itself); fills ``out`` for the whole subtree."""
    children = sum(
        _module_flops(child, f"{name}.{child_name}" if name else child_name, root, traced, out)
        for child_name, child in module.named_children()
    )
    key = f"{root}.{name}" if name else root
    out[name] = int(traced[key]) if key in traced else children
    return out[name]


@torch.no_grad()
def count_flops(
    model: nn.Module, inputs: torch.Tensor | Sequence[Any], forward: Any = None
) -> FlopsReport:
    """Run ``model`` once under ``FlopCounterMode`` and collect its cost per module.

    Args:
        model: any module; detectors are called as ``model(images)`` (raw head outputs).
        inputs: the input tensor, or a sequence of positional arguments.
        forward: the callable to run instead of ``model`` (e.g. ``model.predict``); modules are
            still those of ``model``.

    Returns:
        The totals, the per-module table and the ops that were not counted.
    """
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    was_training = model.training
    model.eval()
    root = type(model).__name__
    counter = FlopCounterMode(display=False, depth=None, custom_mapping=_fast_path_formulas())
    uncounted = _UncountedOps()
    try:
        with counter, uncounted:
            (forward or model)(*args)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    traced = {name: sum(ops.values()) for name, ops in counts.items()}
    flops: dict[str, int] = {}
    _module_flops(model, "", root, traced, flops)
    modules = [ModuleCost(name=name, type_name=type(module).__name__, flops=flops[name],
                          params=_params(module))
               for name, module in model.named_modules()]
    global_counts = counts.get("Global", {})
    shape = tuple(args[0].shape) if isinstance(args[0], torch.Tensor) else ()
    return FlopsReport(
        input_shape=shape,
        total_flops=int(counter.get_total_flops()),
        total_params=_params(model),
        modules=modules,
        flops_by_op={str(op): int(v) for op, v in global_counts.items()},
        uncounted_ops=dict(uncounted.calls.most_common()),
    )


def human(value: float, unit: str = "") -> str:
    """``1.23 G`` style numbers."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}".rstrip()


def format_flops_report(report: FlopsReport, depth: int = 2) -> str:
    """A table of modules down to ``depth`` dots (0: only the whole model), then the totals
    and the uncounted ops."""
    total = max(report.total_flops, 1)
    lines = [f"{'module':<44} {'type':<22} {'FLOPs':>12} {'share':>7} {'params':>10}"]
    for cost in report.modules:
        level = 0 if not cost.name else cost.name.count(".") + 1
        if level > depth or (level and not cost.flops and not cost.params):
            continue
        name = ("  " * level + (cost.name.rsplit(".", 1)[-1] if cost.name else "(model)"))
        lines.append(f"{name:<44} {cost.type_name:<22} {human(cost.flops, 'FLOPs'):>12} "
                     f"{100 * cost.flops / total:6.1f}% {human(cost.params):>10}")
    lines.append("")
    lines.append(f"input {tuple(report.input_shape)}: {human(report.total_flops, 'FLOPs')} "
                 f"({report.total_flops:,}), {human(report.total_params)} parameters "
                 f"({report.total_params:,})")
    for op, value in report.flops_by_op.items():
        lines.append(f"  counted {op}: {human(value, 'FLOPs')}")
    if report.uncounted_ops:
        listed = ", ".join(f"{op} x{n}" for op, n in report.uncounted_ops.items())
        lines.append(f"not counted (no FLOP formula): {listed}")
    return "\n".join(lines)
