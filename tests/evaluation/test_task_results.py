"""``detbox test --out PREFIX`` writes one COCO results file per task (test-server format)."""

from __future__ import annotations

import json

import pytest

from detbox.cli.main import main
from detbox.evaluation.task_results import split_task_results, write_task_results
from tests.tiny_detector import two_stage_model, write_tiny

RLE = {"size": [4, 4], "counts": "04L4"}
COMBINED = [
    {"image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "score": 0.9, "segmentation": RLE,
     "mask_score": 0.45},
    {"image_id": 2, "category_id": 5, "bbox": [1, 1, 2, 2], "score": 0.5, "segmentation": RLE},
]


def test_split_keeps_boxes_apart_from_masks() -> None:
    split = split_task_results(COMBINED)
    assert split["bbox"] == [
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "score": 0.9},
        {"image_id": 2, "category_id": 5, "bbox": [1, 1, 2, 2], "score": 0.5}]
    assert [r["score"] for r in split["segm"]] == [0.45, 0.5]  # masks rank by mask_score
    assert all(r["segmentation"] == RLE and "mask_score" not in r for r in split["segm"])
    boxes_only = [{k: v for k, v in r.items() if k in ("image_id", "category_id", "bbox",
                                                      "score")} for r in COMBINED]
    assert list(split_task_results(boxes_only)) == ["bbox"]


def test_proposals_get_one_category(tmp_path) -> None:
    paths = write_task_results(tmp_path / "sub" / "rpn", COMBINED, proposals=True,
                               proposal_cat_id=7)
    assert list(paths) == ["proposal"] and paths["proposal"].name == "rpn.proposal.json"
    written = json.loads(paths["proposal"].read_text())
    assert [r["category_id"] for r in written] == [7, 7]
    assert all(set(r) == {"image_id", "category_id", "bbox", "score"} for r in written)


@pytest.fixture
def tiny_mask_rcnn(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    return write_tiny(tmp_path / "model", two_stage_model("MaskRCNN"), with_data=True)


def test_format_only_writes_bbox_and_segm_files(tiny_mask_rcnn, tmp_path) -> None:
    config, checkpoint = tiny_mask_rcnn
    prefix = tmp_path / "out" / "results"
    assert main(["test", str(config), str(checkpoint), "--format-only",
                 "--out", str(prefix), "--device", "cpu"]) == 0
    bbox = json.loads((tmp_path / "out/results.bbox.json").read_text())
    segm = json.loads((tmp_path / "out/results.segm.json").read_text())
    assert bbox and len(segm) == len(bbox)
    assert all("segmentation" not in r for r in bbox)
    assert all(set(r["segmentation"]) == {"size", "counts"} for r in segm)
    # a .json path keeps the single combined list
    combined = tmp_path / "combined.json"
    assert main(["test", str(config), str(checkpoint), "--format-only",
                 "--out", str(combined), "--device", "cpu"]) == 0
    results = json.loads(combined.read_text())
    assert [r["bbox"] for r in results] == [r["bbox"] for r in bbox]
    assert all("segmentation" in r for r in results)


def test_proposal_evaluation_writes_a_proposal_file(tiny_mask_rcnn, tmp_path) -> None:
    config, checkpoint = tiny_mask_rcnn
    prefix = tmp_path / "rpn"
    assert main(["test", str(config), str(checkpoint), "--format-only", "--eval", "proposal",
                 "--out", str(prefix), "--device", "cpu"]) == 0
    assert not (tmp_path / "rpn.bbox.json").exists()
    proposals = json.loads((tmp_path / "rpn.proposal.json").read_text())
    assert proposals and {r["category_id"] for r in proposals} == {1}
