"""The Fast R-CNN flow through the command line: an RPN writes proposals with ``detbox test
--out-proposals``, a Fast R-CNN config reads them (test, infer); FLOPs of the new detectors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from detbox.apis.build import build_detector, fill_num_classes
from detbox.cli.main import main
from detbox.config import ConfigDict
from detbox.data.proposals import load_proposals
from detbox.engine.checkpoint import save_checkpoint
from tests.tiny_detector import CAT_IDS, CLASS_NAMES, TEST_PIPELINE, tiny_config, two_stage_model


@pytest.fixture(autouse=True)
def synthetic_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))


def rpn_model() -> dict:
    faster = two_stage_model()
    return {"type": "RPN", "backbone": faster["backbone"], "neck": faster["neck"],
            "rpn_head": faster["rpn_head"]}


def fast_rcnn_model() -> dict:
    model = copy.deepcopy(two_stage_model())
    del model["rpn_head"]
    model["type"] = "FastRCNN"
    return model


def libra_model() -> dict:
    model = copy.deepcopy(two_stage_model())
    model["neck"] = {"type": "NeckSequence",
                     "necks": [model["neck"], {"type": "BFP", "in_channels": 16}]}
    model["roi_head"]["sampler"] = {"type": "IoUBalancedNegSampler", "num": 64,
                                    "pos_fraction": 0.25, "add_gt_as_proposals": True}
    model["roi_head"]["bbox_head"]["loss_bbox"] = {"type": "BalancedL1Loss"}
    return model


def build_lively(cfg: ConfigDict) -> torch.nn.Module:
    """The config's model with random weights whose scores spread over (0, 1)."""
    cfg = ConfigDict(copy.deepcopy(dict(cfg)))
    torch.manual_seed(0)
    fill_num_classes(cfg, CLASS_NAMES, source="the test")
    model = build_detector(cfg.model, CLASS_NAMES, CAT_IDS)
    layers = [model.rpn_head.cls_logits] if hasattr(model, "rpn_head") else []
    layers += [model.roi_head.bbox_head.fc_cls] if hasattr(model, "roi_head") else []
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(std=0.5)
    return model.eval()


def write(folder: Path, name: str, cfg: ConfigDict, model: torch.nn.Module) -> tuple[str, str]:
    config = folder / f"{name}.json"
    config.write_text(json.dumps(cfg))
    checkpoint = save_checkpoint(folder / f"{name}.pth", model=model, epoch=1, iteration=1,
                                 meta={"class_names": CLASS_NAMES, "cat_ids": CAT_IDS})
    return str(config), str(checkpoint)


def with_proposals(cfg: ConfigDict, proposals: Path) -> ConfigDict:
    """The config with LoadProposals right after LoadImage in every pipeline."""
    step = {"type": "LoadProposals", "file": str(proposals), "num_max_proposals": 40}
    cfg = ConfigDict(copy.deepcopy(dict(cfg)))
    cfg["test_pipeline"] = [TEST_PIPELINE[0], step, *TEST_PIPELINE[1:]]
    pipeline = cfg["test_dataloader"]["dataset"]["pipeline"]
    cfg["test_dataloader"]["dataset"]["pipeline"] = [pipeline[0], step, *pipeline[1:]]
    return cfg


def test_rpn_proposals_feed_a_fast_rcnn(tmp_path, capsys):
    torch.manual_seed(0)
    rpn_cfg = tiny_config(rpn_model(), with_data=True)
    rpn = build_lively(rpn_cfg)
    rpn_files = write(tmp_path, "rpn", rpn_cfg, rpn)
    proposals = tmp_path / "proposals.pth"
    assert main(["test", *rpn_files, "--out-proposals", str(proposals), "--eval",
                 "proposal"]) == 0
    assert "proposals of 4 images" in capsys.readouterr().out
    table = load_proposals(proposals)
    assert sorted(table) == [f"{i:06d}.png" for i in range(4)]
    boxes, scores = table["000000.png"]
    assert boxes.shape[1] == 4 and 0 < len(boxes) <= 60 and scores.shape == (len(boxes),)
    assert torch.equal(scores, scores.sort(descending=True).values)
    assert boxes[:, 2:].max() <= 64  # original image pixels (the test resizes 64 -> 96)

    fast_cfg = with_proposals(tiny_config(fast_rcnn_model(), with_data=True), proposals)
    fast = build_lively(fast_cfg)
    fast_files = write(tmp_path, "fast", fast_cfg, fast)
    results = tmp_path / "results.json"
    assert main(["test", *fast_files, "--out", str(results)]) == 0
    detections = json.loads(results.read_text())
    assert detections and {d["category_id"] for d in detections} <= set(CAT_IDS)

    # infer on the dataset's own images: LoadProposals finds them by file name
    image_dir = tmp_path / "cache" / "synthetic"
    images = sorted(image_dir.rglob("000001.png"))
    assert images, list(image_dir.rglob("*"))[:5]
    preds = tmp_path / "preds.json"
    assert main(["infer", *fast_files, str(images[0]), "--out", str(preds),
                 "--score-thr", "0.0"]) == 0
    (record,) = json.loads(preds.read_text()).values()
    assert record["predictions"]


@pytest.mark.parametrize("model", [fast_rcnn_model, libra_model], ids=["fast_rcnn", "libra"])
def test_flops_of_the_new_detectors(model, tmp_path, capsys):
    config = tmp_path / "model.json"
    config.write_text(json.dumps(tiny_config(model())))
    out = tmp_path / "flops.json"
    assert main(["flops", str(config), "--shape", "64", "--num-classes", "3",
                 "--json-out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["total_flops"] > 0
    assert "roi_head" in capsys.readouterr().out
