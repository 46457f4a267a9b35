"""Where a backbone checkpoint named in a config comes from: a file, a URL, or torchvision.

``init_cfg=dict(backbone_checkpoint=...)`` accepts three forms, as MMDetection does:

- ``'torchvision://resnet50'``: torchvision's ImageNet weights for that model
  (``ResNet50_Weights.IMAGENET1K_V1``), read from torch's hub cache;
- ``'https://.../name.pth'``: any URL, cached the same way;
- a plain file path, read as it is.

Downloads go to ``$TORCH_HOME/hub/checkpoints/<file name of the URL>`` (``torch.hub.get_dir()``),
the cache torchvision itself uses, and happen only when the file is not there yet; a file name
with a hash (``resnet50-0676ba61.pth``) is checked against it. Offline, the error names the URL
and the path to place the file at.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import get_model_weights

from detbox.errors import CheckpointError, ConfigError

__all__ = [
    "TORCHVISION_PREFIX", "TORCHVISION_NAMES", "cache_path", "checkpoint_url",
    "resolve_checkpoint", "torchvision_name",
]

TORCHVISION_PREFIX = "torchvision://"
TORCHVISION_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
    "vgg16", "vgg16_features", "mobilenet_v3_large",
)
# Names whose weights are not the model's IMAGENET1K_V1: (model, weights enum member).
# ``vgg16_features`` is the VGG-16 torchvision's SSD starts from (0-255 inputs, std 1).
_WEIGHT_VARIANTS = {"vgg16_features": ("vgg16", "IMAGENET1K_FEATURES")}
_URL_SCHEMES = ("http://", "https://")
_SKIP_HINT = ("or train from scratch with model.init_cfg=None (--cfg-options model.init_cfg=None) "
              "and an unfrozen backbone (frozen_stages=-1, norm='BN' or 'GN')")


def torchvision_name(checkpoint: str | os.PathLike) -> str | None:
    """``'resnet50'`` for ``'torchvision://resnet50'``; None for a path or another URL."""
    text = str(checkpoint)
    return text[len(TORCHVISION_PREFIX):] if text.startswith(TORCHVISION_PREFIX) else None


def _torchvision_url(name: str) -> str:
    if name not in TORCHVISION_NAMES:
        close = difflib.get_close_matches(name, TORCHVISION_NAMES, n=1)
        hint = f" Did you mean '{TORCHVISION_PREFIX}{close[0]}'?" if close else ""
        raise ConfigError(
            f"unknown torchvision checkpoint '{TORCHVISION_PREFIX}{name}'.{hint} Known names: "
            f"{', '.join(TORCHVISION_NAMES)}"
        )
    model, member = _WEIGHT_VARIANTS.get(name, (name, "IMAGENET1K_V1"))
    return getattr(get_model_weights(model), member).url


def checkpoint_url(checkpoint: str | os.PathLike) -> str | None:
    """The URL a checkpoint name downloads from, or None for a plain file path."""
    name = torchvision_name(checkpoint)
    if name is not None:
        return _torchvision_url(name)
    text = str(checkpoint)
    return text if text.startswith(_URL_SCHEMES) else None


def cache_path(url: str) -> Path:
    """Where torch's hub cache keeps the file of ``url``: ``<hub dir>/checkpoints/<name>``."""
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise ConfigError(f"checkpoint URL '{url}' does not end in a file name")
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _download(checkpoint: str, url: str, path: Path) -> None:
    match = torch.hub.HASH_REGEX.search(path.name)
    hash_prefix = match.group(1) if match else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=False)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        source = url if checkpoint == url else f"{checkpoint} ({url})"
        raise CheckpointError(
            f"cannot download the backbone checkpoint {source}: {reason}. Download it elsewhere "
            f"and place it at {path}, {_SKIP_HINT}"
        ) from exc


def resolve_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """The local file of a backbone checkpoint name, downloading a URL's file when absent.

    Args:
        checkpoint: ``'torchvision://<name>'``, an ``http(s)://`` URL, or a file path.

    Returns:
        The file path: the cache path for a URL (downloaded now if it was not cached), the
        path itself otherwise (its existence is the reader's to check).

    Raises:
        ConfigError: an unknown torchvision name.
        CheckpointError: the download failed (offline, HTTP error, hash mismatch); the message
            names the URL, the cache path to place the file at, and how to skip pretraining.
    """
    url = checkpoint_url(checkpoint)
    if url is None:
        return Path(checkpoint)
    path = cache_path(url)
    if not path.is_file():
        _download(str(checkpoint), url, path)
    return path
