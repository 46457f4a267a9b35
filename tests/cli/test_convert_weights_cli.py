"""``detbox convert-weights``: a torchvision checkpoint becomes a detbox one that infers and tests.

The torchvision models have random weights (no pretrained file can be downloaded here); what is
checked is the class bookkeeping: a COCO-shaped checkpoint (91 slots) becomes an 80-class model
named and numbered as ``instances_val2017.json``, so ``detbox test`` accepts COCO-format data.
"""

import json

import numpy as np
import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from detbox.apis.inference import inference_detector, init_detector
from detbox.cli.convert_weights import TORCHVISION_ARCHS
from detbox.cli.main import main
from detbox.engine import load_checkpoint
from detbox.models.weight_conversion import SUPPORTED_ARCHS, torchvision_coco_categories
from tests.conftest import REPO_ROOT, shared_dataset

CONFIG = REPO_ROOT / "configs/torchvision/fasterrcnn_resnet50_fpn.py"


@pytest.fixture(scope="module")
def coco_checkpoint(tmp_path_factory):
    """A random-weight torchvision COCO Faster R-CNN (91 slots), converted by the CLI."""
    folder = tmp_path_factory.mktemp("tv")
    torch.manual_seed(0)
    source, target = folder / "tv.pth", folder / "detbox.pth"
    torch.save(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), source)
    assert main(["convert-weights", "torchvision", "fasterrcnn_resnet50_fpn",
                 str(source), str(target)]) == 0
    return source, target


def test_coco_checkpoint_keeps_the_80_categories_and_infers(coco_checkpoint):
    source, target = coco_checkpoint
    checkpoint = load_checkpoint(target)
    meta = checkpoint["meta"]
    names, ids = torchvision_coco_categories()
    assert len(names) == 80 and "N/A" not in names and names[0] == "person"
    assert meta["class_names"] == names and meta["cat_ids"] == ids
    assert ids[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13] and ids[-1] == 90
    # detbox label k is torchvision's class cat_ids[k]; background moves last.
    tv_cls = torch.load(source)["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(checkpoint["state_dict"]["roi_head.bbox_head.fc_cls.weight"],
                       tv_cls[ids + [0]])

    model = init_detector(CONFIG, target, device="cpu",
                          cfg_options={"test_pipeline.1.scale": (320, 200)})
    assert model.num_classes == 80
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    result = inference_detector(model, image)
    assert result.boxes.shape[1] == 4
    assert bool((result.boxes[:, 2] <= 160).all()) and bool((result.boxes[:, 3] <= 120).all())


def _coco_val_fixture(tmp_path, count: int = 2):
    """A COCO-format file over Penn-Fudan images that declares COCO's 80 categories."""
    root = shared_dataset("pennfudan")
    source = json.loads((root / "annotations/instances_val.json").read_text())
    images = source["images"][:count]
    kept = {image["id"] for image in images}
    names, ids = torchvision_coco_categories()
    data = {
        "images": images,
        "annotations": [a for a in source["annotations"] if a["image_id"] in kept],
        "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in zip(names, ids)],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return path, root / "images"


def test_detbox_test_evaluates_a_converted_coco_model(coco_checkpoint, tmp_path, capsys):
    ann_file, img_dir = _coco_val_fixture(tmp_path)
    metrics = tmp_path / "metrics.json"
    code = main([
        "test", str(CONFIG), str(coco_checkpoint[1]), "--device", "cpu",
        "--json-out", str(metrics), "--cfg-options",
        f"val_dataloader.dataset.ann_file={ann_file}",
        f"val_dataloader.dataset.img_dir={img_dir}/",
        "val_dataloader.dataset.pipeline.1.scale=(320,200)", "val_dataloader.num_workers=0",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "bbox_mAP" in out or "AP" in out
    assert "bbox_mAP" in json.loads(metrics.read_text())


def test_another_class_count_keeps_numbered_classes(tmp_path):
    torch.manual_seed(0)
    source, target = tmp_path / "tv.pth", tmp_path / "detbox.pth"
    tv_model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    torch.save(tv_model.state_dict(), source)
    assert main(["convert-weights", "torchvision", "fasterrcnn_resnet50_fpn",
                 str(source), str(target)]) == 0
    meta = load_checkpoint(target)["meta"]
    assert meta["class_names"] == ["class_1", "class_2"] and meta["cat_ids"] == [1, 2]


def test_parser_archs_match_the_converter():
    assert TORCHVISION_ARCHS == SUPPORTED_ARCHS


def test_convert_rejects_a_checkpoint_of_another_architecture(tmp_path, capsys):
    source = tmp_path / "other.pth"
    torch.save({"something.weight": torch.zeros(1)}, source)
    code = main(["convert-weights", "torchvision", "retinanet_resnet50_fpn", str(source),
                 str(tmp_path / "out.pth")])
    assert code == 2
    assert "something.weight" in capsys.readouterr().err
    assert not (tmp_path / "out.pth").exists()
