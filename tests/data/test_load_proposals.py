"""Proposals files and LoadProposals: saved and read without pickle, moved with the image."""

from __future__ import annotations

import pickle
import random

import pytest
import torch

from detbox.data.proposals import load_proposals, save_proposals
from detbox.data.transforms import (
    Compose,
    Expand,
    LoadProposals,
    PackDetInputs,
    RandomCrop,
    RandomFlip,
    RandomRotate90,
    Resize,
)
from detbox.errors import ConfigError, DatasetError

BOXES = torch.tensor([[4.0, 6.0, 30.0, 20.0], [33.0, 10.0, 60.0, 44.0], [0.0, 0.0, 64.0, 48.0]])
SCORES = torch.tensor([0.9, 0.7, 0.2])


@pytest.fixture
def proposals_file(tmp_path):
    path = tmp_path / "props.pth"
    save_proposals(path, [("x.png", BOXES, SCORES), ("empty.png", torch.zeros(0, 4),
                                                      torch.zeros(0))])
    return path


def _results(file_name: str = "x.png", height: int = 48, width: int = 64) -> dict:
    return {
        "img": torch.randint(0, 256, (3, height, width), dtype=torch.uint8),
        "image_id": 1, "file_name": file_name, "img_path": file_name,
        "ori_shape": (height, width), "img_shape": (height, width),
        "scale_factor": (1.0, 1.0), "flip": None,
        "gt_boxes": BOXES.clone(), "gt_labels": torch.tensor([0, 1, 2]),
    }


def test_round_trip_loads_with_weights_only(proposals_file):
    table = load_proposals(proposals_file)
    assert set(table) == {"x.png", "empty.png"}
    assert torch.equal(table["x.png"][0], BOXES) and torch.equal(table["x.png"][1], SCORES)
    assert table["empty.png"][0].shape == (0, 4)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_files_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_proposals(tmp_path / "missing.pth")
    pickled = tmp_path / "pickled.pth"
    pickled.write_bytes(pickle.dumps({"format": "detbox-proposals", "x": object()}))
    with pytest.raises(DatasetError, match="not a detbox proposals file"):
        load_proposals(pickled)
    other = tmp_path / "other.pth"
    torch.save({"format": "something"}, other)
    with pytest.raises(DatasetError, match="not a detbox proposals file"):
        load_proposals(other)
    with pytest.raises(DatasetError, match="share a file_name"):
        save_proposals(tmp_path / "dup.pth", [("a", BOXES, SCORES), ("a", BOXES, SCORES)])


def test_geometric_transforms_move_proposals_like_boxes(proposals_file):
    random.seed(3)
    results = LoadProposals(file=str(proposals_file))(_results())
    steps = [Resize(scale=(96, 80)),
             RandomFlip(prob=1.0, direction="diagonal"), Expand(prob=1.0, ratio_range=(1.5, 1.5)),
             RandomRotate90(prob=1.0, angles=(90,)), RandomCrop(crop_size=(40, 40),
                                                                box_filter="clip")]
    for step in steps:
        results = step(results)
        if "gt_boxes" in results and results["gt_boxes"].shape[0] == 3:
            # boxes and proposals started equal: every transform keeps them equal
            assert torch.allclose(results["proposals"], results["gt_boxes"], atol=1e-5), step
    assert results["proposals"].shape[0] == results["proposal_scores"].shape[0]
    h, w = results["img_shape"]
    assert (results["proposals"][:, 2] <= w).all() and (results["proposals"][:, 3] <= h).all()


def test_pack_and_num_max_proposals(proposals_file):
    pipeline = Compose([LoadProposals(file=str(proposals_file), num_max_proposals=2),
                        Resize(scale=(128, 96)), PackDetInputs()])
    _, sample = pipeline(_results())
    assert torch.allclose(sample.proposals.boxes, BOXES[:2] * 2)
    assert torch.equal(sample.proposals.scores, SCORES[:2])
    assert sample.proposals.labels.tolist() == [0, 0]
    assert sample.to("cpu").proposals is not None
    _, empty = pipeline(_results("empty.png"))
    assert empty.proposals.boxes.shape == (0, 4)
    _, without = Compose([PackDetInputs()])(_results())
    assert without.proposals is None


def test_lookup_and_order_errors(proposals_file):
    with pytest.raises(DatasetError, match="no proposals for image 'y.png'"):
        LoadProposals(file=str(proposals_file))(_results("y.png"))
    resized = Resize(scale=(128, 96))(_results())
    with pytest.raises(ConfigError, match="before Resize"):
        LoadProposals(file=str(proposals_file))(resized)
    with pytest.raises(ConfigError, match="positive"):
        LoadProposals(file=str(proposals_file), num_max_proposals=0)
