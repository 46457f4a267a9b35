"""Reading an image's pre-computed proposals into the pipeline (Fast R-CNN)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from detbox.data.proposals import load_proposals
from detbox.errors import ConfigError, DatasetError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Positive

__all__ = ["LoadProposals"]

# Each worker process reads a proposals file once, however many pipelines name it.
_LOADED: dict[str, dict] = {}


@TRANSFORMS.register
class LoadProposals:
    """Add the image's proposals from a proposals file (see ``detbox.data.proposals``).

    Adds ``proposals`` (N, 4) float32 xyxy and ``proposal_scores`` (N,), the best
    ``num_max_proposals``. The file holds them in original image pixels, so this step comes
    right after ``LoadImage``: the geometric transforms after it (``Resize``, ``RandomFlip``,
    ``Expand``, crops, rotations) move the proposals with the image, as they move boxes.
    The file is read on first use, once per process, and looked up by ``file_name``.

    Args:
        file: the proposals file (``detbox test RPN_CONFIG CKPT --out-proposals FILE``).
        num_max_proposals: proposals kept per image (None: all).
    """

    def __init__(
        self, *, file: str, num_max_proposals: Annotated[int, Positive] | None = None
    ) -> None:
        if num_max_proposals is not None and num_max_proposals <= 0:
            raise ConfigError(f"LoadProposals num_max_proposals must be positive, got "
                              f"{num_max_proposals}")
        self.file = str(file)
        self.num_max_proposals = num_max_proposals

    def _table(self) -> dict:
        key = str(Path(self.file).resolve())
        if key not in _LOADED:
            _LOADED[key] = load_proposals(self.file)
        return _LOADED[key]

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if tuple(results.get("scale_factor", (1.0, 1.0))) != (1.0, 1.0) or results.get("flip"):
            raise ConfigError("LoadProposals reads proposals in original image pixels: put it "
                              "before Resize, RandomFlip and the other geometric transforms")
        name = results["file_name"]
        table = self._table()
        if name not in table:
            raise DatasetError(f"{self.file} has no proposals for image '{name}' (proposals "
                               "are keyed by the dataset's file_name; write them for this "
                               "dataset with `detbox test ... --out-proposals`)")
        boxes, scores = table[name]
        if self.num_max_proposals is not None:
            boxes, scores = boxes[:self.num_max_proposals], scores[:self.num_max_proposals]
        results["proposals"] = boxes.float().clone()
        results["proposal_scores"] = scores.float().clone()
        return results

    def __repr__(self) -> str:
        return f"LoadProposals(file={self.file!r}, num_max_proposals={self.num_max_proposals})"
