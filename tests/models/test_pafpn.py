"""PAFPN: FPN plus the bottom-up path, by hand and inside a tiny Faster R-CNN."""

import pytest
import torch

from detbox.errors import ConfigError
from detbox.models.necks import FPN, PAFPN
from detbox.registry import MODELS
from tests.models.two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps


def inputs() -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, 16, 32, 40), torch.randn(2, 32, 16, 20), torch.randn(2, 64, 8, 10),
            torch.randn(2, 128, 4, 5)]


@pytest.mark.parametrize("num_outs,extra_convs", [(4, None), (5, None), (5, "input"),
                                                  (5, "output")])
def test_output_shapes(num_outs, extra_convs):
    neck = PAFPN(in_channels=[16, 32, 64, 128], out_channels=8, num_outs=num_outs,
                 extra_convs=extra_convs)
    outs = neck(inputs())
    sizes = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)][:num_outs]
    assert [tuple(o.shape) for o in outs] == [(2, 8, *s) for s in sizes]


def test_bottom_up_path_by_hand_changes_all_but_the_finest_level():
    torch.manual_seed(1)
    neck = PAFPN(in_channels=[16, 32, 64, 128], out_channels=8, num_outs=5, extra_convs="output")
    fpn = FPN(in_channels=[16, 32, 64, 128], out_channels=8, num_outs=5, extra_convs="output")
    missing, unexpected = fpn.load_state_dict(neck.state_dict(), strict=False)
    assert not missing and all(k.startswith(("downsample", "bottom_up")) for k in unexpected)
    feats = inputs()
    outs, plain = neck(feats), fpn(feats)
    assert torch.equal(outs[0], plain[0])
    n = plain[0]
    for i in range(3):
        n = neck.bottom_up_convs[i](plain[i + 1] + neck.downsample_convs[i](n))
        assert torch.allclose(outs[i + 1], n, atol=1e-6)
        assert not torch.allclose(outs[i + 1], plain[i + 1], atol=1e-3)
    # 'output' extra level: from the bottom-up path's coarsest map, not the FPN's
    assert torch.allclose(outs[4], neck.extra_level_convs[0](n), atol=1e-6)


def test_unknown_key_is_a_clear_error():
    with pytest.raises(ConfigError, match="num_outs"):
        MODELS.build({"type": "PAFPN", "in_channels": [8, 16], "num_out": 3})


def test_tiny_faster_rcnn_with_pafpn_trains_and_predicts():
    cfg = tiny_two_stage_cfg("faster")
    cfg["neck"]["type"] = "PAFPN"
    model = build(cfg)
    assert isinstance(model.neck, PAFPN)
    batch = rectangles_batch(scale=0.5)
    history = train_steps(model, batch, steps=8)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    total = [sum(h.values()) for h in history]
    assert min(total[-3:]) < 0.85 * total[0], history
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
        empty = model.predict(type(batch)(images=torch.zeros(1, 3, 64, 64),
                                          samples=batch.samples[:1]))
    assert all(r.boxes.shape[1] == 4 for r in results)
    assert len(empty) == 1 and empty[0].boxes.shape[1] == 4
