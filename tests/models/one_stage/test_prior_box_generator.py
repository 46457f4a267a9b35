"""SSDPriorGenerator against the paper's formula written out prior by prior."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from detbox.errors import ConfigError
from detbox.models.task_modules import SSDPriorGenerator

SSD300 = dict(aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
              scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
              steps=[8, 16, 32, 64, 100, 300])
SSD300_SIZES = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def _reference(aspect_ratios, scales, steps, sizes, image_hw, clip=True):
    """Priors by the paper's loops: for each cell, each (w, h) pair, xyxy in pixels."""
    height, width = image_hw
    levels = []
    for k, (rows, cols) in enumerate(sizes):
        s, s_next = scales[k], scales[k + 1]
        pairs = [(s, s), (math.sqrt(s * s_next),) * 2]
        for r in aspect_ratios[k]:
            pairs += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
        if clip:
            pairs = [(min(w, 1.0), min(h, 1.0)) for w, h in pairs]
        boxes = []
        for y in range(rows):
            for x in range(cols):
                cx = (x + 0.5) * steps[k] / width if steps else (x + 0.5) / cols
                cy = (y + 0.5) * steps[k] / height if steps else (y + 0.5) / rows
                for w, h in pairs:
                    boxes.append([(cx - w / 2) * width, (cy - h / 2) * height,
                                  (cx + w / 2) * width, (cy + h / 2) * height])
        levels.append(torch.tensor(boxes))
    return levels


def test_ssd300_priors_match_the_formula_and_count_8732():
    gen = SSDPriorGenerator(**SSD300)
    priors = gen.grid_anchors(SSD300_SIZES, (300, 300))
    expected = _reference(SSD300["aspect_ratios"], SSD300["scales"], SSD300["steps"],
                          SSD300_SIZES, (300, 300))
    assert gen.num_anchors == [4, 6, 6, 6, 4, 4]
    assert sum(p.shape[0] for p in priors) == 8732
    for ours, ref in zip(priors, expected, strict=True):
        torch.testing.assert_close(ours, ref.float(), atol=1e-3, rtol=0)
    # e.g. the first prior: a 21 px square centred on (4, 4)
    torch.testing.assert_close(priors[0][0], torch.tensor([-6.5, -6.5, 14.5, 14.5]))


def test_even_centres_and_derived_scales_on_a_non_square_input():
    gen = SSDPriorGenerator(aspect_ratios=[[2, 3]] * 3, min_ratio=0.2, max_ratio=0.8)
    assert gen.scales == pytest.approx([0.2, 0.5, 0.8, 1.0])
    sizes = [(4, 6), (2, 3), (1, 2)]
    priors = gen.grid_anchors(sizes, (64, 96))
    expected = _reference(gen.aspect_ratios, gen.scales, None, sizes, (64, 96))
    for ours, ref in zip(priors, expected, strict=True):
        torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("clip", [True, False])
def test_same_priors_as_torchvision_default_box_generator(clip):
    ratios = [[2, 3]] * 6
    ours = SSDPriorGenerator(aspect_ratios=ratios, min_ratio=0.2, max_ratio=0.95, clip=clip)
    theirs = DefaultBoxGenerator(ratios, min_ratio=0.2, max_ratio=0.95, clip=clip)
    sizes = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    feats = [torch.zeros(1, 1, h, w) for h, w in sizes]
    expected = theirs(ImageList(torch.zeros(1, 3, 320, 320), [(320, 320)]), feats)[0]
    torch.testing.assert_close(torch.cat(ours.grid_anchors(sizes, (320, 320))), expected,
                               atol=1e-4, rtol=0)


def test_config_mistakes_are_clear():
    with pytest.raises(ConfigError, match="needs 3 scales"):
        SSDPriorGenerator(aspect_ratios=[[2], [2]], scales=[0.1, 0.2])
    with pytest.raises(ConfigError, match="steps"):
        SSDPriorGenerator(aspect_ratios=[[2], [2]], steps=[8])
    with pytest.raises(ValueError, match="2 levels"):
        SSDPriorGenerator(aspect_ratios=[[2], [2]]).grid_anchors([(4, 4)], (32, 32))
