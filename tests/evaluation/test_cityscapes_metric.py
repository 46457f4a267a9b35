"""Cityscapes evaluation: COCO AP through CocoMetric and the official instance AP, on a tiny
folder in the official layout (converted, loaded through CocoDataset, perfect predictions)."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from detbox.apis.evaluate import build_evaluator
from detbox.data import CocoDataset
from detbox.dataset_converters.cityscapes import (
    CITYSCAPES_THING_CLASSES,
    cityscapes_ann_name,
    cityscapes_to_coco,
)
from detbox.errors import ConfigError
from detbox.evaluation import cityscapes_metric
from detbox.evaluation.cityscapes_metric import (
    CityscapesMetric,
    cityscapes_gt_dir,
    write_cityscapes_results,
)
from detbox.structures import DetSample, Instances
from tests.dataset_converters.cityscapes_layout import write_cityscapes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools, NumPy 2
HAS_CITYSCAPESSCRIPTS = importlib.util.find_spec("cityscapesscripts") is not None


@pytest.fixture
def val_dataset(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes", "val")
    ann_file = tmp_path / cityscapes_ann_name("val")
    cityscapes_to_coco(root, ann_file, split="val")
    return CocoDataset(ann_file, root / "leftImg8bit" / "val", test_mode=True)


def perfect_predictions(dataset, drop_category: int | None = None):
    """The ground truth of every image (crowds left out) as scored mask detections."""
    samples, predictions = [], []
    for image_id in dataset.image_ids:
        info = dataset.coco.imgs[image_id]
        anns = [a for a in dataset.coco.imgToAnns[image_id]
                if not a["iscrowd"] and a["category_id"] != drop_category]
        masks = [mask_utils.decode({**a["segmentation"],
                                    "counts": a["segmentation"]["counts"].encode()}) for a in anns]
        x, y, w, h = (np.asarray([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4).T)
        predictions.append(Instances(
            boxes=torch.from_numpy(np.stack([x, y, x + w, y + h], axis=1)),
            labels=torch.tensor([dataset.cat_ids.index(a["category_id"]) for a in anns],
                                dtype=torch.int64),
            scores=torch.linspace(0.9, 0.5, len(anns)),
            masks=torch.from_numpy(np.stack(masks) if masks else np.zeros((0, 32, 64))).bool(),
        ))
        size = (info["height"], info["width"])
        samples.append(DetSample(image_id=image_id, file_name=info["file_name"], ori_shape=size,
                                 img_shape=size))
    return samples, predictions


def test_results_are_written_in_the_official_format(tmp_path):
    masks = torch.zeros((2, 4, 6), dtype=torch.bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 0, 5] = True
    instances = Instances(boxes=torch.zeros((2, 4)), labels=torch.tensor([2, 0]),
                          scores=torch.tensor([0.75, 0.125]), masks=masks)
    txt = write_cityscapes_results(tmp_path, "aachen_000000_000019", instances,
                                   label_ids=[24, 25, 26])

    assert txt == tmp_path / "aachen_000000_000019_pred.txt"
    assert txt.read_text().splitlines() == ["masks/aachen_000000_000019_0.png 26 0.750000",
                                            "masks/aachen_000000_000019_1.png 24 0.125000"]
    from PIL import Image

    for k in range(2):
        png = np.asarray(Image.open(tmp_path / "masks" / f"aachen_000000_000019_{k}.png"))
        assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
        np.testing.assert_array_equal(png != 0, masks[k].numpy())
    empty = write_cityscapes_results(tmp_path, "bremen_000000_000019", Instances.empty(), [24])
    assert empty.read_text() == ""
    no_masks = Instances(torch.zeros((1, 4)), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ConfigError, match="masks"):
        write_cityscapes_results(tmp_path, "x_1_2", no_masks, [24])


def test_ground_truth_folder_is_found_beside_the_images(tmp_path):
    assert cityscapes_gt_dir("data/cityscapes/leftImg8bit/val/") == \
        cityscapes_gt_dir("data/cityscapes/leftImg8bit/val").parent / "val"
    assert str(cityscapes_gt_dir("/d/cityscapes/leftImg8bit/val")) == "/d/cityscapes/gtFine/val"
    with pytest.raises(ConfigError, match="leftImg8bit"):
        cityscapes_gt_dir(tmp_path / "images")


def test_perfect_predictions_give_coco_ap_one(val_dataset):
    evaluator = build_evaluator(val_dataset, ["bbox", "segm"])
    evaluator.process(*perfect_predictions(val_dataset))
    metrics = evaluator.evaluate()
    assert metrics["bbox_mAP"] == pytest.approx(1.0) and metrics["segm_mAP"] == pytest.approx(1.0)


def test_without_the_package_files_are_written_and_one_line_names_it(val_dataset, monkeypatch,
                                                                     caplog, tmp_path):
    monkeypatch.setattr(cityscapes_metric.importlib.util, "find_spec", lambda name: None)
    with caplog.at_level(logging.WARNING):
        metric = CityscapesMetric(cityscapes_gt_dir(val_dataset.img_dir),
                                  label_ids=val_dataset.cat_ids, results_dir=tmp_path / "res")
        metric.process(*perfect_predictions(val_dataset))
        assert metric.evaluate() == {}
    assert "pip install cityscapesscripts" in caplog.records[0].getMessage()
    assert "\n" not in caplog.records[0].getMessage()
    assert sorted(p.name for p in (tmp_path / "res").glob("*.txt")) == [
        "aachen_000000_000019_pred.txt", "aachen_000001_000019_pred.txt",
        "bremen_000000_000019_pred.txt"]
    assert "not computed" in metric.report()

    metric = CityscapesMetric(cityscapes_gt_dir(val_dataset.img_dir), label_ids=[24] * 8)
    metric.process(*perfect_predictions(val_dataset))
    assert metric._dir is None  # nothing to evaluate the files with: none written
    assert metric.evaluate() == {}


@pytest.mark.skipif(not HAS_CITYSCAPESSCRIPTS, reason="the official Cityscapes AP needs the "
                    "cityscapesscripts package (pip install cityscapesscripts)")
def test_official_ap_of_perfect_and_of_incomplete_predictions(val_dataset):
    evaluator = build_evaluator(val_dataset, ["segm", "cityscapes"])
    evaluator.process(*perfect_predictions(val_dataset))
    metrics = evaluator.evaluate()
    assert metrics["cityscapes_AP"] == pytest.approx(1.0)
    assert metrics["cityscapes_AP50"] == pytest.approx(1.0)
    per_class = metrics["cityscapes_per_class"]
    assert per_class["car"]["AP"] == pytest.approx(1.0) and per_class["truck"]["AP"] == -1.0
    assert "average" in evaluator.report()

    evaluator.process(*perfect_predictions(val_dataset, drop_category=26))  # no car found
    metrics = evaluator.evaluate()
    assert metrics["cityscapes_per_class"]["car"]["AP"] == 0.0
    assert metrics["cityscapes_AP"] == pytest.approx(3 / 4)  # 4 classes with ground truth
    assert metrics["segm_mAP"] == pytest.approx(3 / 4)


@pytest.mark.skipif(not HAS_CITYSCAPESSCRIPTS, reason="the official Cityscapes AP needs the "
                    "cityscapesscripts package (pip install cityscapesscripts)")
def test_an_official_evaluation_that_stops_is_one_clear_error(val_dataset, tmp_path):
    from detbox.errors import DatasetError

    metric = CityscapesMetric(cityscapes_gt_dir(val_dataset.img_dir),
                              label_ids=val_dataset.cat_ids, results_dir=tmp_path / "res")
    metric.process(*perfect_predictions(val_dataset))
    (tmp_path / "res" / "bremen_000000_000019_pred.txt").unlink()
    with pytest.raises(DatasetError, match="stopped: ERROR: Found no prediction for ground "
                       "truth .*bremen_000000_000019_gtFine_instanceIds.png"):
        metric.evaluate()
    assert metric._gt_files == {}  # reset all the same


@pytest.mark.skipif(not HAS_CITYSCAPESSCRIPTS, reason="the official Cityscapes AP needs the "
                    "cityscapesscripts package (pip install cityscapesscripts)")
def test_the_recipe_trains_a_few_steps_and_reports_every_metric(tmp_path):
    """configs/cityscapes/mask_rcnn_r50_fpn_1x_cityscapes.py with a tiny Mask R-CNN, small
    scales and no repeat, on the tiny folder: two steps, then COCO and official AP."""
    from detbox.apis.training import train_detector
    from detbox.config import load_config
    from tests.conftest import REPO_ROOT
    from tests.tiny_detector import two_stage_model

    root = tmp_path / "cityscapes"
    for split in ("train", "val"):
        write_cityscapes(root, split)
        cityscapes_to_coco(root, root / "annotations" / cityscapes_ann_name(split), split=split)
    cfg = load_config(REPO_ROOT / "configs" / "cityscapes" / "mask_rcnn_r50_fpn_1x_cityscapes.py")
    cfg.model = two_stage_model("MaskRCNN")
    train_set = cfg.train_dataloader.dataset
    assert train_set.type == "RepeatDataset" and train_set.times == 8
    cfg.train_dataloader.dataset = train_set.dataset
    cfg.train_dataloader.num_workers = cfg.val_dataloader.num_workers = 0
    for dataset in (cfg.train_dataloader.dataset, cfg.val_dataloader.dataset):
        dataset.ann_file = dataset.ann_file.replace("data/cityscapes", str(root))
        dataset.img_dir = dataset.img_dir.replace("data/cityscapes", str(root))
        resize = next(t for t in dataset.pipeline if t.type == "Resize")
        resize.scale = (128, 64)
        if "scale_range" in resize:
            resize.scale_range = (48, 64)
    cfg.train_cfg.max_epochs = 1
    cfg.lr_schedule.warmup_iters = 1
    metrics = train_detector(cfg, work_dir=tmp_path / "work", device=torch.device("cpu"))
    for key in ("bbox_mAP", "segm_mAP", "cityscapes_AP", "cityscapes_AP50"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert list(metrics["cityscapes_per_class"]) == list(CITYSCAPES_THING_CLASSES)
