"""Running an exported detector with onnxruntime: same inputs, same outputs as ``predict``.

:class:`OnnxDetector` reads what it needs from the ONNX file's metadata (class names, category
ids, the test pipeline, the default score threshold, mask settings), prepares images with the
same pipeline as the PyTorch model and maps boxes (and masks) back to the original image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from detbox.errors import DetboxError
from detbox.structures import ImageBatch, Instances

__all__ = ["META_PREFIX", "OnnxDetector", "read_metadata"]

META_PREFIX = "detbox_"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise DetboxError("running ONNX models needs onnxruntime: pip install 'detbox[tools]'") \
            from exc
    return onnxruntime


def read_metadata(session: Any) -> dict[str, Any]:
    """The ``detbox_*`` metadata of an onnxruntime session, JSON-decoded, prefix removed."""
    props = session.get_modelmeta().custom_metadata_map
    return {k[len(META_PREFIX):]: json.loads(v) for k, v in props.items()
            if k.startswith(META_PREFIX)}


class OnnxDetector:
    """An exported detbox model behind ``predict``-like methods.

    Args:
        path: the ``.onnx`` file written by ``detbox export-onnx``.
        providers: onnxruntime execution providers (default: CPU).
        threads: intra-op threads for onnxruntime (0: its default).
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] | None = None,
                 threads: int = 0) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.meta = read_metadata(self.session)
        missing = [k for k in ("class_names", "cat_ids", "test_pipeline", "score_thr")
                   if k not in self.meta]
        if missing:
            raise DetboxError(f"{path} lacks detbox metadata {missing}; export it with "
                              "detbox export-onnx")
        self.class_names: list[str] = list(self.meta["class_names"])
        self.cat_ids: list[int] = list(self.meta["cat_ids"])
        self.score_thr = float(self.meta["score_thr"])
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def cfg(self) -> dict[str, Any]:
        """A config holding only the test pipeline (what ``prepare_batch`` reads)."""
        from detbox.config import ConfigDict

        return ConfigDict({"test_pipeline": self.meta["test_pipeline"]})

    def run_raw(self, image: np.ndarray, image_size: Sequence[float],
                score_thr: float | None = None) -> dict[str, np.ndarray]:
        """Run the graph on one (1, 3, H, W) float32 input; outputs by name, in input pixels."""
        feeds = {
            "images": np.ascontiguousarray(image, dtype=np.float32),
            "image_size": np.asarray(image_size, dtype=np.float32),
            "score_thr": np.asarray([self.score_thr if score_thr is None else score_thr],
                                    dtype=np.float32),
        }
        return dict(zip(self.output_names, self.session.run(None, feeds)))

    def predict_batch(self, batch: ImageBatch, score_thr: float | None = None) -> list[Instances]:
        """Detections per image of a prepared batch, in original image coordinates (as the
        PyTorch model's ``predict``)."""
        from detbox.models.detectors.base import rescale_to_original

        results = []
        for index, sample in enumerate(batch.samples):
            image = batch.images[index:index + 1].detach().cpu().numpy()
            out = self.run_raw(image, sample.img_shape, score_thr)
            instances = Instances(boxes=torch.from_numpy(out["boxes"]).float(),
                                  labels=torch.from_numpy(out["labels"]).long(),
                                  scores=torch.from_numpy(out["scores"]).float())
            instances = rescale_to_original(instances, sample)
            if "mask_probs" in out:
                instances = self._paste(instances, out["mask_probs"], sample)
            results.append(instances)
        return results

    def _paste(self, instances: Instances, probs: np.ndarray, sample) -> Instances:
        from dataclasses import replace

        from detbox.models.mask_ops import paste_masks

        masks = paste_masks(torch.from_numpy(probs), instances.boxes, sample.ori_shape,
                            threshold=float(self.meta.get("mask_thr", 0.5)),
                            mode=str(self.meta.get("paste_mode", "grid")))
        return replace(instances, masks=masks)

    def __call__(self, images: Sequence[Any], score_thr: float | None = None) -> list[Instances]:
        """Detect objects in images (paths or (H, W, 3) uint8 RGB arrays), one at a time."""
        from detbox.data.inference import prepare_batch

        return [self.predict_batch(prepare_batch(self.cfg, [image], i), score_thr)[0]
                for i, image in enumerate(images)]
