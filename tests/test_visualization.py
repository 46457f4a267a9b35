"""Pictures a person can read: small images are enlarged before boxes and labels are drawn."""

import numpy as np
import torch
from PIL import Image

from detbox.structures import Instances
from detbox.visualization import (
    class_color,
    draw_instances,
    label_font,
    picture_grid,
    save_visualization,
)

NAMES = ["circle", "square", "triangle"]


def _instances() -> Instances:
    return Instances(boxes=torch.tensor([[10.0, 20.0, 60.0, 70.0], [70.0, 64.0, 120.0, 120.0]]),
                     labels=torch.tensor([0, 2]), scores=torch.tensor([0.9, 0.5]))


def test_small_image_is_drawn_at_legible_size():
    image = np.full((128, 96, 3), 40, dtype=np.uint8)
    picture = draw_instances(image, _instances(), NAMES, min_side=512)
    assert picture.size == (512, round(128 * 512 / 96))  # short side 96 -> 512, ratio kept
    pixels = np.asarray(picture)
    scale = 512 / 96
    # the box outlines move with the picture: the left edge of box 0 at x = 10 * scale
    row = round(45 * scale)
    assert tuple(pixels[row, round(10 * scale)]) == class_color(0)
    assert tuple(pixels[row, round(30 * scale)]) == (40, 40, 40)  # the inside stays clear


def test_label_text_scales_with_the_picture():
    assert label_font(512).size > label_font(128).size >= 12
    image = np.zeros((128, 128, 3), dtype=np.uint8)
    small = np.asarray(draw_instances(image, _instances(), NAMES, min_side=0))
    large = np.asarray(draw_instances(image, _instances(), NAMES, min_side=512))
    # the filled tag above box 0 (top y = 20, left x = 10) is taller on the large picture
    tag_small = (small[:20, 11] == class_color(0)).all(axis=1).sum()
    tag_large = (large[:80, 41] == class_color(0)).all(axis=1).sum()
    assert 12 <= tag_small < tag_large


def test_large_images_and_min_side_zero_keep_their_size(tmp_path):
    assert draw_instances(np.zeros((600, 800, 3), np.uint8), _instances(), NAMES,
                          min_side=512).size == (800, 600)
    assert draw_instances(np.zeros((64, 80, 3), np.uint8), _instances(), NAMES).size == (80, 64)
    save_visualization(np.zeros((128, 128, 3), np.uint8), _instances(), NAMES,
                       tmp_path / "vis" / "a.png")
    assert Image.open(tmp_path / "vis" / "a.png").size == (512, 512)


def test_picture_grid_tiles_rows_and_columns():
    red = Image.new("RGB", (128, 128), (255, 0, 0))
    blue = Image.new("RGB", (64, 32), (0, 0, 255))
    grid = picture_grid([[red, blue], [blue, red]], titles=["prediction", "ground truth"],
                        tile=200)
    head = grid.height - 2 * 200
    assert grid.width == 400 and 0 < head < 60
    pixels = np.asarray(grid)
    assert tuple(pixels[head + 100, 100]) == (255, 0, 0)
    assert tuple(pixels[head + 40, 300]) == (0, 0, 255)  # a small picture is enlarged to fit
    assert tuple(pixels[head + 300, 300]) == (255, 0, 0)
    assert (pixels[:head, :200] < 128).any()  # the column title is written
