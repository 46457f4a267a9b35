import pytest
import torch
import torch.nn.functional as F

from detbox.errors import ConfigError
from detbox.models.necks import FPN


def odd_inputs(batch: int = 2) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [
        torch.randn(batch, 16, 25, 33), torch.randn(batch, 32, 13, 17), torch.randn(batch, 64, 7, 9)
    ]


@pytest.mark.parametrize("extra_convs", ["input", "output", None])
def test_output_shapes_for_odd_input_sizes(extra_convs):
    fpn = FPN(in_channels=[16, 32, 64], out_channels=8, num_outs=5, extra_convs=extra_convs)
    outs = fpn(odd_inputs())
    expected = [(25, 33), (13, 17), (7, 9), (4, 5), (2, 3)]
    assert [tuple(o.shape[-2:]) for o in outs] == expected
    assert all(o.shape[:2] == (2, 8) for o in outs)


def test_top_down_pathway_and_extra_levels_by_hand():
    fpn = FPN(in_channels=[16, 32, 64], out_channels=8, num_outs=5, extra_convs="input")
    c3, c4, c5 = odd_inputs()
    outs = fpn([c3, c4, c5])
    lat3, lat4, lat5 = (conv(x) for conv, x in zip(fpn.lateral_convs, (c3, c4, c5)))
    top4 = lat4 + F.interpolate(lat5, size=(13, 17), mode="nearest")
    top3 = lat3 + F.interpolate(top4, size=(25, 33), mode="nearest")
    torch.testing.assert_close(outs[0], fpn.output_convs[0](top3))
    torch.testing.assert_close(outs[2], fpn.output_convs[2](lat5))
    p6 = fpn.extra_level_convs[0](c5)
    torch.testing.assert_close(outs[3], p6)
    torch.testing.assert_close(outs[4], fpn.extra_level_convs[1](F.relu(p6)))
    assert fpn.extra_level_convs[0].in_channels == 64


def test_output_mode_builds_extra_levels_from_p5_and_maxpool_mode_pools():
    outputs_mode = FPN(in_channels=[16, 32, 64], out_channels=8, num_outs=5, extra_convs="output",
                       relu_before_extra=False)
    outs = outputs_mode(odd_inputs())
    torch.testing.assert_close(outs[3], outputs_mode.extra_level_convs[0](outs[2]))
    torch.testing.assert_close(outs[4], outputs_mode.extra_level_convs[1](outs[3]))
    pool = FPN(in_channels=[16, 32, 64], out_channels=8, num_outs=4, extra_convs=None)
    outs = pool(odd_inputs())
    torch.testing.assert_close(outs[3], outs[2][:, :, ::2, ::2])
    assert len(pool.extra_level_convs) == 0


def test_group_norm_and_config_errors():
    fpn = FPN(in_channels=[16, 32, 64], out_channels=32, num_outs=5, norm="GN")
    assert len(fpn(odd_inputs(batch=1))) == 5
    with pytest.raises(ConfigError, match="extra_convs"):
        FPN(in_channels=[16], extra_convs="on_input")
    with pytest.raises(ConfigError, match="num_outs"):
        FPN(in_channels=[16, 32], num_outs=1)
