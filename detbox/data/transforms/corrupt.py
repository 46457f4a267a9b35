"""Image corruptions of the robustness benchmark (Michaelis et al., 2019; Hendrycks and
Dietterich, 2019), over the ``imagecorruptions`` package (``pip install 'detbox[robustness]'``)."""

from __future__ import annotations

import os
import sys
import types
import warnings
import zlib
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import torch

from detbox.errors import ConfigError, DatasetError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Range

__all__ = [
    "BENCHMARK_CORRUPTIONS", "CORRUPTION_GROUPS", "CORRUPTIONS", "EXTRA_CORRUPTIONS", "Corrupt",
    "corruption_names", "load_imagecorruptions",
]

#: The benchmark's four groups of corruptions, in the package's order.
CORRUPTION_GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
#: The 15 corruptions of the benchmark (the package's ``get_corruption_names('common')``).
BENCHMARK_CORRUPTIONS = tuple(name for group in CORRUPTION_GROUPS.values() for name in group)
#: The 4 extra (held-out) corruptions (``get_corruption_names('validation')``).
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
#: All 19, as ``get_corruption_names('all')``.
CORRUPTIONS = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

_MISSING = ("the Corrupt transform needs the imagecorruptions package: "
            "pip install 'detbox[robustness]'")


def corruption_names(selection: str | Sequence[str]) -> list[str]:
    """The corruptions a selection names, in order, each once.

    Args:
        selection: ``benchmark`` (the 15), ``all`` (the 19), a group (``noise``, ``blur``,
            ``weather``, ``digital``) or a corruption's name; or a list of these.

    Raises:
        ConfigError: a word that is none of these, with the valid ones.
    """
    words = [selection] if isinstance(selection, str) else list(selection)
    names: list[str] = []
    for word in words:
        if word == "benchmark":
            names += BENCHMARK_CORRUPTIONS
        elif word == "all":
            names += CORRUPTIONS
        elif word in CORRUPTION_GROUPS:
            names += CORRUPTION_GROUPS[word]
        elif word in CORRUPTIONS:
            names.append(word)
        else:
            raise ConfigError(
                f"unknown corruption '{word}'; choose benchmark, all, a group "
                f"({', '.join(CORRUPTION_GROUPS)}) or one of: {', '.join(CORRUPTIONS)}")
    return list(dict.fromkeys(names))


class _NumPyWithOldNames(types.ModuleType):
    """NumPy as the package expects it: ``np.float_`` (removed in NumPy 2) is ``float64``."""

    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _gaussian_with_multichannel(image, sigma=1, multichannel=None, **kwargs):
    """scikit-image's ``gaussian`` taking the ``multichannel=True`` it dropped in 0.19."""
    from skimage.filters import gaussian

    if multichannel:
        kwargs["channel_axis"] = -1
    return gaussian(image, sigma=sigma, **kwargs)


def _package_file(module: str, path: str) -> str:
    """``pkg_resources.resource_filename`` for a module's own data files."""
    return os.path.join(os.path.dirname(sys.modules[module].__file__), path)


def load_imagecorruptions() -> types.ModuleType:
    """The ``imagecorruptions`` package, adapted to today's libraries.

    Its last release (1.1.2) imports ``pkg_resources`` (gone from recent setuptools), calls
    scikit-image's ``gaussian(multichannel=True)`` and uses ``np.float_``; the module gets
    stand-ins for these three, which compute what the originals did.

    Raises:
        ConfigError: the package is not installed, naming the extra to install.
    """
    shim = None
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = _package_file
        sys.modules["pkg_resources"] = shim
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated scipy / pkg_resources imports
            import imagecorruptions
            from imagecorruptions import corruptions
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} ({exc})") from None
    finally:
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]
    corruptions.gaussian = _gaussian_with_multichannel
    corruptions.np = _NumPyWithOldNames("numpy")
    return imagecorruptions


def _image_seed(key: Any, corruption: str, severity: int) -> int:
    return zlib.crc32(f"{key}/{corruption}/{severity}".encode())


@TRANSFORMS.register
class Corrupt:
    """Corrupt the image as the robustness benchmark does; boxes and masks are untouched.

    Goes right after ``LoadImage`` (it works on the decoded uint8 pixels). The corruption's
    random draws are seeded from the image id (the file path when there is none), the
    corruption and the severity, so a run is reproducible whatever the workers and ranks; the
    global NumPy random state is restored afterwards.

    Args:
        corruption: one of ``CORRUPTIONS`` (the 15 of the benchmark and 4 extra).
        severity: 1 (mild) to 5 (strong); 0 leaves the image as it is (the clean baseline).

    Raises:
        ConfigError: an unknown corruption, listing the names; ``imagecorruptions`` missing.
    """

    def __init__(self, *, corruption: str,
                 severity: Annotated[int, Range(ge=0, le=5)] = 1) -> None:
        if corruption not in CORRUPTIONS:
            raise ConfigError(f"Corrupt: unknown corruption '{corruption}'; choose one of: "
                              f"{', '.join(CORRUPTIONS)}")
        if not 0 <= severity <= 5:
            raise ConfigError(f"Corrupt: severity must be 0 (none) to 5, got {severity}")
        self.corruption = corruption
        self.severity = int(severity)
        self._package = load_imagecorruptions() if self.severity else None

    def corrupt_array(self, image: np.ndarray, key: Any) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the corrupted (H, W, 3) uint8, seeded by ``key``."""
        if not self.severity:
            return image
        state = np.random.get_state()
        np.random.seed(_image_seed(key, self.corruption, self.severity))
        try:
            out = self._package.corrupt(np.ascontiguousarray(image), severity=self.severity,
                                        corruption_name=self.corruption)
        finally:
            np.random.set_state(state)
        return np.array(out, dtype=np.uint8)  # a writable copy

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        image = results["img"]
        if (image.dtype != torch.uint8 or image.ndim != 3
                or tuple(results.get("img_shape", ())) != tuple(results.get("ori_shape", ()))):
            raise ConfigError("Corrupt works on the decoded image: put it right after LoadImage")
        if not self.severity:
            return results
        height, width = image.shape[1:]
        if min(height, width) < 32:
            raise DatasetError(f"{results.get('img_path', 'image')}: {width}x{height} pixels; "
                               "the corruptions need images of at least 32x32")
        key = results.get("image_id", results.get("img_path"))
        out = self.corrupt_array(image.permute(1, 2, 0).numpy(), key)
        results["img"] = torch.from_numpy(out).permute(2, 0, 1).contiguous()
        return results

    def __repr__(self) -> str:
        return f"Corrupt(corruption={self.corruption!r}, severity={self.severity})"
