"""Every one-stage head takes ``nms=dict(type='soft_nms', ...)`` through its DetectionSettings:
its detections are exactly ``SoftNMS`` run on the head's own candidates, they differ from plain
NMS as Soft-NMS must, typos fail at construction, and ONNX export refuses Soft-NMS."""

from __future__ import annotations

import pytest
import torch

import detbox.models  # noqa: F401  (registers the heads)
from detbox.errors import ConfigError, DetboxError
from detbox.models.dense_heads import DetectionSettings
from detbox.models.task_modules.nms import NMS, SoftNMS
from detbox.registry import MODELS
from tests.models._helpers import make_sample, tiny_retina_head_cfg
from tests.models.one_stage._tiny import head_cfg

SOFT = {"type": "soft_nms", "method": "gaussian", "sigma": 0.5, "min_score": 1e-3}
STRIDES = [8, 16, 32]
SIZES = [(8, 8), (4, 4), (2, 2)]  # a 64 x 64 image
GA_ANCHORS = {
    "approx_anchor_generator": {"type": "AnchorGenerator", "strides": STRIDES},
    "square_anchor_generator": {"type": "AnchorGenerator", "strides": STRIDES,
                                "ratios": [1.0], "scales": [4]},
}
SSD_PRIORS = {"type": "SSDPriorGenerator", "aspect_ratios": [[2], [2, 3]],
              "scales": [0.2, 0.5, 0.9], "steps": [8, 16]}
HEADS = {
    "RetinaHead": tiny_retina_head_cfg(),
    "FreeAnchorRetinaHead": tiny_retina_head_cfg(type="FreeAnchorRetinaHead"),
    "FCOSHead": head_cfg("FCOSHead"),
    "ATSSHead": head_cfg("ATSSHead"),
    "GFLHead": head_cfg("GFLHead"),
    "FoveaHead": head_cfg("FoveaHead"),
    "RepPointsHead": {"type": "RepPointsHead", "num_classes": 2, "in_channels": 8,
                      "feat_channels": 8, "point_feat_channels": 8, "stacked_convs": 1,
                      "strides": STRIDES},
    "GARetinaHead": {"type": "GARetinaHead", "num_classes": 2, "in_channels": 8,
                     "feat_channels": 8, "stacked_convs": 1, **GA_ANCHORS},
    "SSDHead": {"type": "SSDHead", "num_classes": 2, "in_channels": [8, 16],
                "prior_generator": SSD_PRIORS},
}
# Many overlapping candidates of each class, none cut by max_per_img.
SELECTION = {"score_thr": 0.2, "nms_pre": 60, "max_per_img": 1000}


def build_head(name: str, **overrides) -> torch.nn.Module:
    """The tiny head in eval mode, its conv weights redrawn and biases zeroed so that the
    scores spread from near 0 to near 1 (and every guided-anchoring location is kept)."""
    torch.manual_seed(0)
    if name == "SSDHead" and "nms_pre" in overrides:
        overrides["topk"] = overrides.pop("nms_pre")
    head = MODELS.build({**HEADS[name], **overrides})
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param_name, param in head.named_parameters():
            if param.dim() == 4:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
            elif param_name.endswith("bias"):
                param.zero_()
    return head.eval()


def head_inputs(name: str) -> list[torch.Tensor]:
    torch.manual_seed(2)
    if name == "SSDHead":
        return [torch.randn(1, c, h, w) for c, (h, w) in zip((8, 16), SIZES)]
    return [torch.randn(1, 8, h, w) for h, w in SIZES]


def predict(head, feats, **changes):
    """One image's detections with the head's settings changed as given (then restored)."""
    saved = head.test_settings
    head.test_settings = saved.replace(**changes)
    try:
        with torch.no_grad():
            return head.predict(feats, [make_sample(img_shape=(64, 64))])[0]
    finally:
        head.test_settings = saved


@pytest.mark.parametrize("name", list(HEADS))
def test_soft_nms_head_equals_soft_nms_on_its_candidates(name):
    head = build_head(name, nms=SOFT, **SELECTION)
    assert isinstance(head.test_settings.suppress, SoftNMS)
    feats = head_inputs(name)
    soft = predict(head, feats)
    # Plain NMS at IoU 1 drops nothing: the head's candidates, all classes, best first.
    cands = predict(head, feats, nms={"type": "nms", "iou_thr": 1.0})
    plain = predict(head, feats, nms=None)
    assert 30 < len(cands) < SELECTION["max_per_img"]

    keep, scores = SoftNMS(**{k: v for k, v in SOFT.items() if k != "type"})(
        cands.boxes, cands.scores, cands.labels, SELECTION["max_per_img"])
    torch.testing.assert_close(soft.boxes, cands.boxes[keep])
    torch.testing.assert_close(soft.scores, scores)
    assert torch.equal(soft.labels, cands.labels[keep])

    # As Soft-NMS must differ from plain NMS: the same best box, more boxes kept, overlapping
    # ones decayed rather than dropped, never a score raised.
    assert 0 < len(plain) < len(soft)
    torch.testing.assert_close(soft.scores[0], plain.scores[0])
    torch.testing.assert_close(soft.boxes[0], plain.boxes[0])
    original = cands.scores[keep]
    assert (soft.scores <= original + 1e-6).all() and (soft.scores < original - 1e-3).any()


@pytest.mark.parametrize("name", list(HEADS))
def test_nms_typos_fail_at_construction_naming_the_key(name):
    with pytest.raises(ConfigError, match="sigmaa.*sigma"):
        MODELS.build({**HEADS[name], "nms": {"type": "soft_nms", "sigmaa": 0.5}})
    with pytest.raises(ConfigError, match="soft_nms"):
        MODELS.build({**HEADS[name], "nms": {"type": "sofft_nms"}})
    with pytest.raises(ConfigError, match="sigma"):
        MODELS.build({**HEADS[name], "nms": {"type": "soft_nms", "sigma": 0.0}})


def test_a_typo_in_a_full_config_names_its_place():
    from tests.models._helpers import tiny_retinanet_cfg

    cfg = tiny_retinanet_cfg()
    cfg["bbox_head"]["nms"] = {"type": "soft_nms", "methd": "linear"}
    with pytest.raises(ConfigError, match=r"model\.bbox_head\.nms.*'methd'.*'method'"):
        MODELS.build(cfg, path="model")


@pytest.mark.parametrize("name", list(HEADS))
def test_settings_keep_the_heads_defaults_and_follow_its_attributes(name):
    head = MODELS.build(HEADS[name])
    settings = head.test_settings
    defaults = {"ATSSHead": 0.6, "GFLHead": 0.6, "SSDHead": 0.45}
    assert settings.nms_iou_thr == defaults.get(name, 0.5)
    assert isinstance(settings.suppress, NMS) and settings.suppress.iou_thr == settings.nms_iou_thr
    head.nms_iou_thr = 0.3
    assert head.test_settings.nms_iou_thr == 0.3 and head.test_settings.suppress.iou_thr == 0.3
    head.score_thr, head.max_per_img = 0.4, 7
    assert (head.test_settings.score_thr, head.test_settings.max_per_img) == (0.4, 7)
    with pytest.raises(ConfigError, match="score_thr"):
        head.score_thr = 1.5
    head.nms = SOFT
    assert isinstance(head.test_settings.suppress, SoftNMS)


def test_a_live_threshold_change_changes_the_prediction():
    head = build_head("FCOSHead", **SELECTION)
    feats = head_inputs("FCOSHead")
    with torch.no_grad():
        before = head.predict(feats, [make_sample()])[0]
        head.nms_iou_thr = 1.0
        after = head.predict(feats, [make_sample()])[0]
    assert len(after) > len(before)


def test_ssd_topk_is_the_settings_nms_pre():
    head = MODELS.build({**HEADS["SSDHead"], "topk": 7})
    assert head.topk == head.test_settings.nms_pre == 7
    head.topk = 3
    assert head.test_settings.nms_pre == 3


def test_settings_check_their_values():
    with pytest.raises(ConfigError, match="nms_pre"):
        DetectionSettings(nms_pre=-2)
    with pytest.raises(ConfigError, match="max_per_img"):
        DetectionSettings(max_per_img=0)
    assert DetectionSettings(nms={"type": "nms", "iou_thr": 0.7}).suppress.iou_thr == 0.7


def test_ga_rpn_proposals_with_soft_nms():
    cfg = {"type": "GARPNHead", "in_channels": 8, "feat_channels": 8, **GA_ANCHORS}
    proposals = {"nms_pre": 100, "max_per_img": 300}
    torch.manual_seed(0)
    plain = MODELS.build({**cfg, "test_proposals": proposals})
    soft = MODELS.build({**cfg, "test_proposals": {**proposals, "nms": SOFT}})
    soft.load_state_dict(plain.state_dict())
    feats = head_inputs("GARPNHead")
    with torch.no_grad():
        (a,) = plain.predict(feats, [make_sample()])
        (b,) = soft.predict(feats, [make_sample()])
    assert 0 < len(a) < len(b)
    torch.testing.assert_close(a.scores[0], b.scores[0])
    assert torch.equal(b.scores, b.scores.sort(descending=True).values)
    with pytest.raises(ConfigError, match="sigmaa"):
        MODELS.build({**cfg, "test_proposals": {"nms": {"type": "soft_nms", "sigmaa": 1}}})


def _tiny_detector(name: str, **head_overrides):
    import copy

    from tests.models.one_stage._tiny_ssd import TINY_SSD300, build_tiny_ssd
    from tests.tiny_detector import RETINANET, build_tiny, tiny_config

    cfg = copy.deepcopy(TINY_SSD300 if name == "SSD" else RETINANET)
    cfg["bbox_head"].update(head_overrides)
    return build_tiny_ssd(cfg) if name == "SSD" else build_tiny(tiny_config(cfg))


@pytest.mark.parametrize("name", ["RetinaNet", "SSD"])
def test_onnx_export_refuses_soft_nms_in_one_line(name, tmp_path):
    pytest.importorskip("onnx")
    from detbox.deploy.onnx_export import export_onnx

    model = _tiny_detector(name, nms={"type": "soft_nms"})
    with pytest.raises(DetboxError, match=r"plain NMS only.*bbox_head\.nms uses SoftNMS"):
        export_onnx(model, tmp_path / "model.onnx", shape=(300, 300) if name == "SSD" else (64, 64))


@pytest.mark.parametrize("name", ["RetinaNet", "SSD"])
def test_export_graph_reads_a_plain_nms_config(name):
    from detbox.deploy.onnx_ssd import export_graph

    size = 300 if name == "SSD" else 64
    inputs = (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)),
              torch.tensor([float(size), float(size)]), torch.tensor([0.05]))
    outputs = []
    for overrides in ({"nms_iou_thr": 0.3}, {"nms": {"type": "nms", "iou_thr": 0.3}},
                      {"nms_iou_thr": 0.9}):
        model = _tiny_detector(name, max_per_img=1000, **overrides)
        with torch.no_grad():
            outputs.append(export_graph(model).eval()(*inputs))
    by_thr, by_cfg, other = outputs
    assert all(torch.equal(a, b) for a, b in zip(by_thr, by_cfg))
    assert len(other[0]) > len(by_thr[0]) > 0
