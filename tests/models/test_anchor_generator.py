import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from detbox.errors import ConfigError
from detbox.models.task_modules import AnchorGenerator
from detbox.registry import TASK_UTILS


def test_hand_computed_grid_is_location_major():
    gen = AnchorGenerator(strides=[16], ratios=[1.0], scales=[2.0])
    (anchors,) = gen.grid_anchors([(2, 3)])
    # One 32x32 anchor centred on each cell's top-left corner; row index y * W + x.
    expected = torch.tensor([
        [-16, -16, 16, 16], [0, -16, 32, 16], [16, -16, 48, 16],
        [-16, 0, 16, 32], [0, 0, 32, 32], [16, 0, 48, 32],
    ], dtype=torch.float32)
    assert gen.num_anchors == 1
    assert torch.equal(anchors, expected)


def test_ratio_major_within_a_location():
    gen = AnchorGenerator(strides=[8], ratios=[0.5, 2.0], scales=[1.0, 2.0])
    (anchors,) = gen.grid_anchors([(1, 2)])
    assert anchors.shape == (2 * 4, 4)
    widths = anchors[:4, 2] - anchors[:4, 0]
    heights = anchors[:4, 3] - anchors[:4, 1]
    # Order: (ratio 0.5, size 8), (0.5, 16), (2.0, 8), (2.0, 16); ratio = h / w, area = size**2.
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 0.5, 2.0, 2.0]))
    torch.testing.assert_close(widths * heights, torch.tensor([64.0, 256.0, 64.0, 256.0]))
    # The second location repeats the first, shifted by one stride in x.
    torch.testing.assert_close(anchors[4:], anchors[:4] + torch.tensor([8.0, 0, 8, 0]))


def test_retinanet_octave_sizes():
    gen = TASK_UTILS.build({"type": "AnchorGenerator", "strides": [8, 16, 32, 64, 128]})
    assert gen.num_anchors == 9
    assert gen.num_levels == 5
    expected = [32 * 2 ** (i / 3) for i in range(3)]
    assert gen.sizes[0] == pytest.approx(expected)
    assert gen.sizes[4] == pytest.approx([16 * s for s in expected])


def test_center_offset_moves_anchor_centres_to_cell_centres():
    gen = AnchorGenerator(strides=[8], ratios=[1.0], scales=[1.0], center_offset=0.5)
    (anchors,) = gen.grid_anchors([(2, 2)])
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert torch.equal(centres, torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]]))


def test_matches_torchvision_retinanet_anchors_exactly():
    sizes = tuple(
        (x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128, 256, 512]
    )
    tv = TVAnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    ours = AnchorGenerator(strides=[8, 16, 32, 64, 128], sizes=sizes, round_base=True)
    grid = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    feature_maps = [torch.zeros(1, 1, h, w) for h, w in grid]
    image_list = ImageList(torch.zeros(1, 3, 256, 256), [(256, 256)])
    expected = tv(image_list, feature_maps)[0]
    assert ours.num_anchors == tv.num_anchors_per_location()[0]
    assert torch.equal(torch.cat(ours.grid_anchors(grid)), expected)


def test_config_errors():
    with pytest.raises(ConfigError, match="size lists"):
        AnchorGenerator(strides=[8, 16], sizes=[[32]])
    with pytest.raises(ConfigError, match="same number of sizes"):
        AnchorGenerator(strides=[8, 16], sizes=[[32], [64, 80]])
    with pytest.raises(ValueError, match="levels"):
        AnchorGenerator(strides=[8]).grid_anchors([(1, 1), (1, 1)])


def test_rpn_style_scales():
    gen = AnchorGenerator(strides=[4, 8], ratios=[0.5, 1.0, 2.0], scales=[8])
    assert gen.num_anchors == 3
    assert gen.sizes == [[32.0], [64.0]]
    (level0, _) = gen.grid_anchors([(1, 1), (1, 1)])
    assert level0[1].tolist() == [-16.0, -16.0, 16.0, 16.0]
    assert (level0[0, 2] - level0[0, 0]).item() == pytest.approx(32 * math.sqrt(2), rel=1e-6)


def test_strides_from_sizes_follows_torchvision_on_a_padded_size_not_divisible_by_64():
    """Padded 352 x 320: P6 (stride 64) is 6 x 5, so torchvision's strides are 58 (y), 64 (x)."""
    sizes = [(88, 80), (6, 5)]
    ours = AnchorGenerator(strides=[4, 64], sizes=[[32], [512]], round_base=True,
                           strides_from_sizes=True).grid_anchors(sizes)
    tv = TVAnchorGenerator(sizes=((32,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    feats = [torch.zeros(1, 1, h, w) for h, w in sizes]
    expected = tv(ImageList(torch.zeros(1, 3, 352, 320), [(352, 320)]), feats)[0]
    assert torch.equal(torch.cat(ours), expected)
    nominal = AnchorGenerator(strides=[4, 64], sizes=[[32], [512]], round_base=True)
    assert not torch.equal(nominal.grid_anchors(sizes)[1], ours[1])
