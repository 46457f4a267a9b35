"""A phone photo rotated by its EXIF orientation: the size reported, the boxes and the drawings
all follow the upright picture the model saw, through the API and ``detbox infer``."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from detbox.apis.inference import (
    Prediction,
    inference_detector,
    inference_with_images,
    init_detector,
    show_result,
)
from detbox.cli.main import main
from tests.tiny_detector import write_tiny

_ORIENTATION = 0x0112  # EXIF tag; 6 means "rotate 90 degrees clockwise to view"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return [str(p) for p in write_tiny(tmp_path_factory.mktemp("exif"))]


@pytest.fixture(scope="module")
def rotated_photo(tmp_path_factory):
    """(path, upright pixels): a 80 x 48 (W x H) JPEG whose EXIF says to show it 48 x 80."""
    path = tmp_path_factory.mktemp("photo") / "phone.jpg"
    stored = np.random.default_rng(3).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[_ORIENTATION] = 6
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    with Image.open(path) as image:
        assert image.size == (80, 48) and image.getexif()[_ORIENTATION] == 6
        upright = np.array(ImageOps.exif_transpose(image).convert("RGB"))
    assert upright.shape == (80, 48, 3)
    return path, upright


def test_api_reads_the_photo_upright_and_returns_it(tiny, rotated_photo):
    path, upright = rotated_photo
    model = init_detector(*tiny, device="cpu")
    from_file = inference_detector(model, path)
    from_array = inference_detector(model, upright)
    assert len(from_file) > 0
    assert torch.allclose(from_file.boxes, from_array.boxes, atol=1e-4)
    [prediction] = inference_with_images(model, [path])
    assert isinstance(prediction, Prediction) and prediction.ori_shape == (80, 48)
    assert np.array_equal(prediction.image, upright)
    assert torch.equal(prediction.instances.boxes, from_file.boxes)
    assert float(from_file.boxes[:, 2].max()) <= 48 and float(from_file.boxes[:, 3].max()) <= 80


def test_show_result_draws_on_the_upright_photo(tiny, rotated_photo):
    path, upright = rotated_photo
    model = init_detector(*tiny, device="cpu")
    result = inference_detector(model, path)
    picture = show_result(path, result, model=model, score_thr=0.0)
    assert picture.size == (48, 80)
    blank = show_result(path, result, model=model, score_thr=1.1)
    assert np.array_equal(np.asarray(blank), upright)


def test_infer_cli_reports_the_upright_size_and_draws_upright(tiny, rotated_photo, tmp_path):
    path, upright = rotated_photo
    preds, vis = tmp_path / "preds.json", tmp_path / "vis"
    assert main(["infer", *tiny, str(path), "--out", str(preds), "--vis-dir", str(vis),
                 "--score-thr", "0.2"]) == 0
    record = json.loads(preds.read_text())[str(path)]
    assert (record["width"], record["height"]) == (48, 80)
    assert record["predictions"]
    for pred in record["predictions"]:
        box = pred["bbox"]
        assert box["x_min"] + box["width"] <= 48 + 1e-3
        assert box["y_min"] + box["height"] <= 80 + 1e-3
    # Saved pictures are enlarged to 512 px on the short side, upright: 48 x 80 -> 512 x 853.
    with Image.open(vis / "phone.png") as drawn:
        assert drawn.size == (512, 853)
    # Nothing above the threshold: the saved picture is exactly the upright photo, enlarged.
    assert main(["infer", *tiny, str(path), "--vis-dir", str(tmp_path / "blank"),
                 "--score-thr", "1.1"]) == 0
    enlarged = Image.fromarray(upright).resize((512, 853), Image.Resampling.BICUBIC)
    with Image.open(tmp_path / "blank" / "phone.png") as drawn:
        assert np.array_equal(np.asarray(drawn.convert("RGB")), np.asarray(enlarged))
