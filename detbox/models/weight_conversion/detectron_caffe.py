"""Detectron / MSRA caffe ImageNet ResNets (``R-50.pkl``) as torchvision-layout state dicts.

The ImageNet ResNets that Detectron (and, through it, Detectron2 and MMDetection's caffe
recipes) start from were trained in Caffe by MSRA. They are pickles of NumPy arrays, optionally
under a ``"blobs"`` key, named in Caffe2's way:

========================================  ==========================================
Detectron blob                             detbox (torchvision layout)
========================================  ==========================================
``conv1_w``                                ``conv1.weight``
``res_conv1_bn_s`` / ``_b``                ``bn1.weight`` / ``bn1.bias``
``res{S}_{B}_branch2{a,b,c}_w``            ``layer{S-1}.{B}.conv{1,2,3}.weight``
``res{S}_{B}_branch2{a,b,c}_bn_s`` / _b    ``layer{S-1}.{B}.bn{1,2,3}.weight`` / ``.bias``
``res{S}_{B}_branch1_w``                   ``layer{S-1}.{B}.downsample.0.weight``
``res{S}_{B}_branch1_bn_s`` / ``_b``       ``layer{S-1}.{B}.downsample.1.weight`` / ``.bias``
``fc1000_w`` / ``fc1000_b``                dropped (the ImageNet classifier)
``*_momentum``                             dropped (solver state)
========================================  ==========================================

Their batch norms were folded into an affine map, ``y = x * s + b``, before release. detbox's
norms compute ``(x - mean) / sqrt(var + eps) * weight + bias`` (FrozenBN and BN both with
``eps = 1e-5``), so the converted norms get ``mean = 0`` and ``var = 1 - eps``: in float32,
``var + eps`` is then exactly 1 and the norm computes exactly ``x * s + b``.

The network is caffe-style (stride in each stage's first 1x1 conv) and expects BGR pixels minus
``[103.530, 116.280, 123.675]``, std 1: build it with ``ResNet(style="caffe")`` and
``Normalize(mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False)``.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from detbox.errors import CheckpointError

__all__ = ["FROZEN_BN_EPS", "convert_detectron_caffe_resnet", "read_detectron_pickle"]

FROZEN_BN_EPS = 1e-5
_BLOCK = re.compile(r"res(?P<stage>[2-5])_(?P<block>\d+)_branch(?P<branch>1|2[abc])(?P<part>.*)")
_DROPPED = re.compile(r"fc1000_[wb]|.*_momentum")
_PARTS = {"_w": "weight", "_bn_s": "weight", "_bn_b": "bias"}
_CONVS = {"2a": ("conv1", "bn1"), "2b": ("conv2", "bn2"), "2c": ("conv3", "bn3"),
          "1": ("downsample.0", "downsample.1")}
# What a Detectron pickle may hold: NumPy arrays and the builtins they are made of.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and plain containers only: a weights file runs no code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return super().find_class(module, name)


def read_detectron_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The blobs of a Detectron ``.pkl``: ``{name: array}``, read from under ``"blobs"`` if
    there. Python 2 pickles (Detectron's) are read with ``encoding="latin1"``.

    Raises:
        CheckpointError: no such file, not a pickle of arrays, or no blob in it.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"Detectron weights file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = _NumpyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a Detectron weights pickle: {exc}") from exc
    if isinstance(data, Mapping) and isinstance(data.get("blobs"), Mapping):
        data = data["blobs"]
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{path} holds no blobs (expected a dict of NumPy arrays, "
                              f"possibly under 'blobs')")
    return {str(k): v for k, v in data.items()}


def _target(name: str) -> str | None:
    """The torchvision key of one Detectron blob name; None for an unknown name."""
    if name == "conv1_w":
        return "conv1.weight"
    if name in ("res_conv1_bn_s", "res_conv1_bn_b"):
        return f"bn1.{_PARTS[name[len('res_conv1'):]]}"
    match = _BLOCK.fullmatch(name)
    if match is None or match["part"] not in _PARTS:
        return None
    conv, norm = _CONVS[match["branch"]]
    module = conv if match["part"] == "_w" else norm
    stage = int(match["stage"]) - 1
    return f"layer{stage}.{int(match['block'])}.{module}.{_PARTS[match['part']]}"


def _norm_of(conv: str) -> str:
    """The norm blob prefix of a conv blob: ``res_conv1_bn`` for ``conv1_w``."""
    return "res_conv1_bn" if conv == "conv1_w" else f"{conv.removesuffix('_w')}_bn"


def _check_complete(names: list[str], source: str) -> None:
    """The stem conv is there, every conv has both halves of its norm and every norm its conv."""
    convs = [n for n in names if n.endswith("_w")]
    norms = {n for n in names if not n.endswith("_w")}
    needed = {f"{_norm_of(c)}{half}" for c in ["conv1_w", *convs] for half in ("_s", "_b")}
    missing = sorted(({"conv1_w"} - set(convs)) | (needed - norms))
    if missing:
        raise CheckpointError(f"{source} lacks the blob '{missing[0]}' (a Detectron ResNet has "
                              "conv1_w, res_conv1_bn_s/_b and <conv>_w, <conv>_bn_s, <conv>_bn_b "
                              "for every residual conv)")
    orphans = sorted(norms - needed)
    if orphans:
        raise CheckpointError(f"{source} has the norm blob '{orphans[0]}' but not its conv "
                              f"'{orphans[0].rsplit('_bn_', 1)[0]}_w'")


def convert_detectron_caffe_resnet(blobs: Mapping[str, Any], source: str = "the weights"
                                   ) -> dict[str, Tensor]:
    """Detectron caffe ResNet blobs -> a torchvision-layout backbone state dict.

    Args:
        blobs: ``{name: array}`` as :func:`read_detectron_pickle` returns.
        source: the file name, for messages.

    Returns:
        ``conv1.weight``, ``bn1.*``, ``layer{1..4}.{i}.conv{1,2,3}.weight``, ``...bn{1,2,3}.*``
        and ``...downsample.{0,1}.*`` as float32 tensors, norms with running mean 0 and
        running var ``1 - FROZEN_BN_EPS`` (see the module docstring). ``load_torchvision_weights``
        of ``ResNet(style="caffe", depth=...)`` reads it (``backbone_checkpoint=<file>``).

    Raises:
        CheckpointError: an unknown blob name, a blob that is not an array, or a conv or norm
            whose partner is missing; the message names ``source`` and the key.
    """
    names = [name for name in blobs if not _DROPPED.fullmatch(name)]
    converted: dict[str, Tensor] = {}
    for name in names:
        value, key = blobs[name], _target(name)
        if key is None:
            raise CheckpointError(f"{source} has the blob '{name}', which is no part of a "
                                  "Detectron caffe ResNet")
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{source}: blob '{name}' is a {type(value).__name__}, "
                                  "not an array")
        converted[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    _check_complete(names, source)
    for key in [k for k in converted if k.endswith(".bias")]:
        prefix = key.removesuffix("bias")
        channels = converted[key].numel()
        converted[f"{prefix}running_mean"] = torch.zeros(channels)
        converted[f"{prefix}running_var"] = torch.full((channels,), 1.0 - FROZEN_BN_EPS)
    return dict(sorted(converted.items()))
