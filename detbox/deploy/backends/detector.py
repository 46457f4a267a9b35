"""A detector whose networks run on an exported backend and whose post-processing is detbox's.

:class:`BackendDetector` has the PyTorch detector's interface (``predict(batch)`` ->
``list[Instances]`` in original image coordinates, ``cfg``, ``dataset_meta``), so
``iter_predictions``, ``detbox infer``, ``detbox benchmark``, ``detbox test`` and TTA take it
as they take the model itself. It runs the graphs of :mod:`detbox.deploy.backends.graphs` and,
between and after them, the PyTorch detector's own methods: the heads' ``predict_by_outputs``,
the RoI extractors and ``postprocess``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from detbox.deploy.backends.graphs import split_network_outputs
from detbox.deploy.backends.runtimes import GraphSession
from detbox.models.roi_heads.mask_branch import attach_masks
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.structures import DetSample, ImageBatch, Instances

__all__ = ["BackendDetector"]


class BackendDetector(nn.Module):
    """Runs ``sessions`` (one per exported graph) in place of ``detector``'s networks.

    Args:
        detector: the plain PyTorch detector the graphs were exported from (CPU, eval); its
            heads' post-processing, RoI extractors and ``postprocess`` are used as they are.
        sessions: ``{"network": ..., "box_head": ..., "mask_head": ...}`` (the parts the
            detector has), each a :class:`~detbox.deploy.backends.runtimes.GraphSession`.
        backend: the runtime's name (``onnxruntime`` or ``openvino``), for reports.
    """

    def __init__(self, detector: nn.Module, sessions: Mapping[str, GraphSession],
                 backend: str) -> None:
        super().__init__()
        self.detector = detector.eval()
        self.sessions = dict(sessions)
        self.backend = backend
        self.parity = None  # the ParityCheck made with it, set by ``backend_detector``
        self.cfg = detector.cfg
        self.dataset_meta = detector.dataset_meta

    @property
    def num_classes(self) -> int:
        return self.detector.num_classes

    def run_graph(self, name: str, *inputs: Tensor) -> list[Tensor]:
        """Run the graph ``name`` on CPU float32 tensors; its outputs as tensors."""
        outputs = self.sessions[name].run([x.detach().float().cpu().numpy() for x in inputs])
        return [torch.from_numpy(out) for out in outputs]

    def _roi_graph(self, name: str, module: nn.Module, roi_feats: Tensor) -> list[Tensor]:
        """A RoI head's graph on (R, C, S, S) features; with no RoI, the (empty) PyTorch head
        gives the output shapes (a runtime may reject zero-sized inputs)."""
        if roi_feats.shape[0] == 0:
            out = module(roi_feats)
            return list(out) if isinstance(out, (tuple, list)) else [out]
        return self.run_graph(name, roi_feats)

    @torch.no_grad()
    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image in original image coordinates, as ``detector.predict``."""
        feats, cls_logits, box_deltas = split_network_outputs(
            self.detector, self.run_graph("network", batch.images))
        if hasattr(self.detector, "roi_head"):
            proposals = self.detector.rpn_head.predict_by_outputs(cls_logits, box_deltas,
                                                                  batch.samples)
            results = self._roi_stage(feats, proposals, batch.samples)
        else:
            results = self.detector.bbox_head.predict_by_outputs(cls_logits, box_deltas,
                                                                 batch.samples)
        return self.detector.postprocess(results, batch.samples)

    def _roi_stage(self, feats: list[Tensor], proposals: list[Instances],
                   samples: Sequence[DetSample]) -> list[Instances]:
        """Box head graph -> detections (-> mask head graph), in ``img_shape`` coordinates:
        ``StandardRoIHead.predict`` with graphs for the heads."""
        roi_head = self.detector.roi_head
        rois = boxes_to_rois([p.boxes for p in proposals])
        cls_score, bbox_pred = self._roi_graph(
            "box_head", roi_head.bbox_head, roi_head.bbox_roi_extractor(feats, rois))
        dets = roi_head.bbox_head.predict_by_outputs(cls_score, bbox_pred, rois,
                                                     [s.img_shape for s in samples])
        if not getattr(roi_head, "with_mask", False):
            return dets
        rois = boxes_to_rois([d.boxes for d in dets])
        labels = torch.cat([d.labels for d in dets])
        (mask_logits,) = self._roi_graph(
            "mask_head", roi_head.mask_head, roi_head.mask_roi_extractor(feats, rois))
        probs = roi_head.mask_head.predict_by_outputs(mask_logits, labels)
        return attach_masks(dets, probs, None)

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        raise NotImplementedError(f"a {self.backend} detector only predicts")

    def forward(self, images: Tensor) -> list[Tensor]:
        """The network graph's raw outputs for (B, 3, H, W) images."""
        return self.run_graph("network", images)
