"""Second-stage heads: pool features for proposals, then classify, refine and segment them."""

from detbox.models.roi_heads.bbox_head import ConvFCBBoxHead
from detbox.models.roi_heads.box_branch import BoxBranch, BoxOutputs, refinement_labels
from detbox.models.roi_heads.cascade_roi_head import CascadeRoIHead, cascade_box_predict
from detbox.models.roi_heads.grid_head import GridHead
from detbox.models.roi_heads.grid_roi_head import GridRoIHead
from detbox.models.roi_heads.htc_mask_head import HTCMaskHead
from detbox.models.roi_heads.htc_roi_head import HTCRoIHead
from detbox.models.roi_heads.mask_branch import MaskBranch
from detbox.models.roi_heads.mask_head import FCNMaskHead, crop_mask_targets
from detbox.models.roi_heads.mask_iou_head import MaskIoUHead, mask_iou_targets
from detbox.models.roi_heads.res5_roi_head import Res5RoIHead
from detbox.models.roi_heads.roi_extractor import (
    MultiLevelRoIExtractor,
    boxes_to_rois,
    map_rois_to_levels,
)
from detbox.models.roi_heads.semantic_head import FusedSemanticHead
from detbox.models.roi_heads.standard_roi_head import StandardRoIHead

__all__ = [
    "BoxBranch",
    "BoxOutputs",
    "CascadeRoIHead",
    "ConvFCBBoxHead",
    "FCNMaskHead",
    "FusedSemanticHead",
    "GridHead",
    "GridRoIHead",
    "HTCMaskHead",
    "HTCRoIHead",
    "MaskBranch",
    "MaskIoUHead",
    "MultiLevelRoIExtractor",
    "Res5RoIHead",
    "StandardRoIHead",
    "boxes_to_rois",
    "cascade_box_predict",
    "crop_mask_targets",
    "map_rois_to_levels",
    "mask_iou_targets",
    "refinement_labels",
]
