"""Publishing a checkpoint: weights and metadata only, on the CPU, with its hash in the name.

A training checkpoint carries the optimizer, scheduler and RNG states needed to resume; none
of them matters to someone who only wants to run the model, and together they can triple the
file size. :func:`publish_checkpoint` keeps ``state_dict`` and ``meta`` (class names, category
ids, config), moves every tensor to the CPU and writes ``OUT-<sha256[:8]>.pth`` (or
``.safetensors``) so that a download can be checked against its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import detbox
from detbox.engine.checkpoint import extract_state_dict, load_checkpoint
from detbox.errors import CheckpointError

__all__ = [
    "SAFETENSORS_META_KEY", "PublishResult", "file_sha256", "publish_checkpoint", "published_name",
]

# The key of the safetensors header metadata that holds detbox's JSON ``meta``.
SAFETENSORS_META_KEY = "detbox_meta"
_KEPT = ("state_dict", "model", "meta", "detbox_version", "torch_version")


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish_checkpoint` wrote.

    Attributes:
        path: the published file.
        sha256: hex SHA-256 of its bytes (its first 8 digits are in the name).
        num_tensors: weight tensors kept.
        dropped: top-level checkpoint entries left out (optimizer, scheduler, RNG, ...).
    """

    path: Path
    sha256: str
    num_tensors: int
    dropped: tuple[str, ...]


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def published_name(out: str | os.PathLike, sha256: str, suffix: str) -> Path:
    """``out`` without its ``.pth``/``.safetensors`` suffix, plus ``-<sha256[:8]><suffix>``."""
    out = Path(out)
    stem = out.name
    for known in (".pth", ".pt", ".safetensors"):
        if stem.endswith(known):
            stem = stem[: -len(known)]
            break
    return out.with_name(f"{stem}-{sha256[:8]}{suffix}")


def _published_content(checkpoint: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    weights = extract_state_dict(checkpoint)
    state = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    meta = checkpoint.get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"the checkpoint's 'meta' is a {type(meta).__name__}, not a dict")
    return state, meta


def _write_pth(state: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
    torch.save({
        "state_dict": state,
        "meta": json.dumps(meta),
        "detbox_version": detbox.__version__,
        "torch_version": str(torch.__version__),
    }, path)


def _write_safetensors(state: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError as exc:
        raise CheckpointError(
            "--safetensors needs the safetensors package: pip install 'detbox[tools]'"
        ) from exc
    # safetensors refuses tensors that share memory; published weights need no sharing.
    state = {k: v.clone() for k, v in state.items()}
    save_file(state, str(path), metadata={
        SAFETENSORS_META_KEY: json.dumps(meta),
        "detbox_version": detbox.__version__,
        "torch_version": str(torch.__version__),
    })


def publish_checkpoint(
    in_file: str | os.PathLike, out_file: str | os.PathLike, safetensors: bool = False
) -> PublishResult:
    """Write the publishable form of ``in_file`` and return its final path.

    Args:
        in_file: a detbox checkpoint (training or published) or a bare state dict file.
        out_file: the name to publish under; ``-<first 8 hex digits of the file's SHA-256>``
            and the suffix (``.pth``, or ``.safetensors`` with ``safetensors=True``) are added.
        safetensors: write a safetensors file whose header metadata holds the JSON ``meta``
            under ``"detbox_meta"``, instead of a torch pickle.

    Returns:
        The path written (the hash in its name is the SHA-256 of its bytes) and what was dropped.
    """
    checkpoint = load_checkpoint(in_file, map_location="cpu")
    state, meta = _published_content(checkpoint)
    has_container = any(isinstance(checkpoint.get(k), dict) for k in ("state_dict", "model"))
    dropped = tuple(str(k) for k in checkpoint if has_container and k not in _KEPT)
    suffix = ".safetensors" if safetensors else ".pth"
    target_dir = Path(out_file).parent
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".publish.", suffix=suffix, dir=target_dir)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        (_write_safetensors if safetensors else _write_pth)(state, meta, tmp_path)
        sha256 = file_sha256(tmp_path)
        final = published_name(out_file, sha256, suffix)
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)
    return PublishResult(path=final, sha256=sha256, num_tensors=len(state), dropped=dropped)
