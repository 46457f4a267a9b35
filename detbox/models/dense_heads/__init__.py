"""Dense heads: per-location predictions on every feature level."""

from detbox.models.dense_heads.atss_head import ATSSHead
from detbox.models.dense_heads.dense_utils import (
    DenseTargets,
    ProposalSettings,
    dense_targets,
    flatten_level,
    flatten_levels,
    nms_instances,
    select_detections,
    select_per_class_detections,
    select_proposals,
    topk_candidates,
    topk_sigmoid_candidates,
)
from detbox.models.dense_heads.detection_settings import DetectionSettings, WithDetectionSettings
from detbox.models.dense_heads.fcos_head import FCOSHead
from detbox.models.dense_heads.fovea_head import FoveaHead
from detbox.models.dense_heads.free_anchor_head import FreeAnchorRetinaHead
from detbox.models.dense_heads.ga_retina_head import GARetinaHead
from detbox.models.dense_heads.ga_rpn_head import GARPNHead
from detbox.models.dense_heads.gfl_head import GFLHead
from detbox.models.dense_heads.reppoints_head import RepPointsHead
from detbox.models.dense_heads.retina_head import RetinaHead
from detbox.models.dense_heads.retina_sepbn_head import RetinaSepBNHead
from detbox.models.dense_heads.rpn_head import RPNHead
from detbox.models.dense_heads.ssd_head import SSDHead

__all__ = [
    "ATSSHead",
    "DenseTargets",
    "DetectionSettings",
    "FCOSHead",
    "FoveaHead",
    "FreeAnchorRetinaHead",
    "GARPNHead",
    "GARetinaHead",
    "GFLHead",
    "ProposalSettings",
    "RPNHead",
    "RepPointsHead",
    "RetinaHead",
    "RetinaSepBNHead",
    "SSDHead",
    "WithDetectionSettings",
    "dense_targets",
    "flatten_level",
    "flatten_levels",
    "nms_instances",
    "select_detections",
    "select_per_class_detections",
    "select_proposals",
    "topk_candidates",
    "topk_sigmoid_candidates",
]
