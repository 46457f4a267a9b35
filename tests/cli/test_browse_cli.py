"""``detbox browse-dataset``: training images after the pipeline, normalization undone, GT drawn."""

import numpy as np
import torch
from PIL import Image

from detbox.cli.main import main
from detbox.data.transforms import Normalize
from detbox.structures import DetSample, Instances
from detbox.visualization import class_color, denormalize, ground_truth
from tests.conftest import shared_dataset


def _config(tmp_path, pipeline: str) -> str:
    root = shared_dataset("pennfudan")
    config = tmp_path / "browse.py"
    config.write_text(
        f"train_pipeline = {pipeline}\n"
        f"train_dataloader = dict(dataset=dict(type='CocoDataset', "
        f"ann_file='{root}/annotations/instances_val.json', img_dir='{root}/images', "
        f"pipeline=train_pipeline))\n"
    )
    return str(config)


PLAIN = ("[dict(type='LoadImage'), dict(type='LoadAnnotations', with_mask=True), "
         "dict(type='Resize', scale=(200, 150)), dict(type='Normalize'), "
         "dict(type='PackDetInputs')]")
AUGMENTED = ("[dict(type='LoadImage'), dict(type='LoadAnnotations', with_mask=True), "
             "dict(type='PhotoMetricDistortion'), dict(type='Expand', ratio_range=(1, 2)), "
             "dict(type='MinIoURandomCrop'), dict(type='Resize', scale=(200, 150)), "
             "dict(type='RandomFlip', direction=['horizontal', 'vertical']), "
             "dict(type='Normalize'), dict(type='PackDetInputs')]")


def test_pictures_show_the_transformed_image_with_its_boxes(tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["browse-dataset", _config(tmp_path, PLAIN), "--out", str(out),
                 "--num", "2"]) == 0
    assert "2 pictures of the train data" in capsys.readouterr().out
    pictures = sorted(out.glob("*.png"))
    assert [p.name for p in pictures] == ["00000_FudanPed00001.png", "00001_FudanPed00004.png"]
    with Image.open(pictures[0]) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert max(pixels.shape[:2]) <= 200 and min(pixels.shape[:2]) <= 150  # after Resize
    outline = (pixels == np.array(class_color(0), dtype=np.uint8)).all(axis=2)
    assert outline.sum() > 100  # box outlines and the label background in the class colour
    assert pixels.std() > 20  # a real photo, not a flat (still normalized) image


def test_random_augmentations_and_shuffle(tmp_path):
    out = tmp_path / "augmented"
    assert main(["browse-dataset", _config(tmp_path, AUGMENTED), "--out", str(out),
                 "--num", "3", "--shuffle", "--seed", "1"]) == 0
    assert len(list(out.glob("*.png"))) == 3


def test_denormalize_gives_back_the_pixels():
    pixels = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    results = Normalize()({"img": pixels})
    shown = denormalize(results["img"], results["img_norm"])
    assert shown.shape == (5, 7, 3) and shown.dtype == np.uint8
    assert np.array_equal(shown, pixels.permute(1, 2, 0).numpy())
    assert np.array_equal(denormalize(pixels.float(), None), shown)


def test_ignored_boxes_are_drawn_as_an_extra_class():
    masks = torch.ones((1, 4, 4), dtype=torch.uint8)
    sample = DetSample(
        image_id=1, file_name="a.png", ori_shape=(4, 4), img_shape=(4, 4),
        gt=Instances(boxes=torch.tensor([[0.0, 0, 2, 2]]), labels=torch.tensor([0]),
                     masks=masks),
        ignored_boxes=torch.tensor([[1.0, 1, 3, 3]]),
    )
    gt = ground_truth(sample, num_classes=1)
    assert gt.labels.tolist() == [0, 1] and gt.boxes.shape == (2, 4)
    assert gt.masks.shape == (2, 4, 4) and gt.masks[1].sum() == 0
