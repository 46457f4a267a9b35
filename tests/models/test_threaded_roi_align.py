"""RoIAlign on the CPU: RoIs shared among torch's threads (same values, forward and backward),
channels-last maps copied to NCHW once per prediction."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from detbox.models import memory_layout
from detbox.models.roi_heads import threaded_roi_align as module
from detbox.models.roi_heads.roi_extractor import MultiLevelRoIExtractor
from detbox.models.roi_heads.threaded_roi_align import threaded_roi_align


def _inputs(num_rois: int = 200, dtype=torch.float32):
    torch.manual_seed(0)
    feat = torch.randn(2, 8, 40, 50, dtype=dtype, requires_grad=True)
    corners = torch.rand(num_rois, 4, dtype=dtype) * 120
    boxes = torch.cat([corners[:, :2], corners[:, :2] + corners[:, 2:]], dim=1)
    rois = torch.cat([torch.randint(0, 2, (num_rois, 1)).to(dtype), boxes], dim=1)
    return feat, rois


@pytest.fixture
def spy(monkeypatch):
    """The number of items each threaded call shared out (recorded, then run as before)."""
    sizes = []
    run = module._in_threads
    monkeypatch.setattr(module, "_in_threads",
                        lambda fn, items: sizes.append(len(items)) or run(fn, items))
    return sizes


def test_forward_is_bit_identical_and_split_among_the_threads(spy):
    torch.set_num_threads(3)  # restored by the conftest fixture
    feat, rois = _inputs()
    expected = roi_align(feat, rois, (7, 7), 0.25, 2, True)
    with torch.no_grad():
        got = threaded_roi_align(feat, rois, (7, 7), 0.25, 2, True)
    with torch.inference_mode():
        in_inference = threaded_roi_align(feat.detach(), rois, (7, 7), 0.25, 2, True)
    assert spy == [3, 3]
    assert torch.equal(got, expected) and torch.equal(in_inference, expected)


def test_backward_is_split_too_and_matches_one_call(spy):
    torch.set_num_threads(2)
    feat, rois = _inputs()
    weights = torch.randn(200, 8, 7, 7)
    (expected,) = torch.autograd.grad((roi_align(feat, rois, 7, 0.25, 0, False) * weights).sum(),
                                      feat)
    out = threaded_roi_align(feat, rois, (7, 7), 0.25, 0, False)
    assert out.requires_grad
    (got,) = torch.autograd.grad((out * weights).sum(), feat)
    assert spy == [2, 2]  # forward chunks, then backward chunks
    assert torch.allclose(got, expected, atol=1e-5)


def test_gradcheck_through_the_threaded_function(monkeypatch):
    torch.set_num_threads(2)
    monkeypatch.setattr(module, "MIN_ROIS_PER_THREAD", 1)
    feat, rois = _inputs(num_rois=6, dtype=torch.float64)
    feat = feat[:, :2, :12, :12].detach().requires_grad_()
    rois = torch.cat([rois[:, :1], rois[:, 1:] / 12], dim=1)
    assert torch.autograd.gradcheck(
        lambda f: threaded_roi_align(f, rois, (3, 3), 1.0, 2, True), (feat,))


@pytest.mark.parametrize("case", ["one thread", "few rois"])
def test_one_plain_call_where_threads_do_not_pay(case, spy):
    torch.set_num_threads(1 if case == "one thread" else 4)
    feat, rois = _inputs(num_rois=200 if case == "one thread" else 40)
    with torch.no_grad():
        got = threaded_roi_align(feat, rois, (7, 7), 0.25, 2, True)
    assert spy == []
    assert torch.equal(got, roi_align(feat, rois, (7, 7), 0.25, 2, True))


def test_multi_level_extractor_trains_the_same_with_threads(monkeypatch):
    extractor = MultiLevelRoIExtractor(output_size=7, featmap_strides=(4, 8))
    torch.manual_seed(0)
    feats = [torch.randn(2, 8, 40, 50, requires_grad=True),
             torch.randn(2, 8, 20, 25, requires_grad=True)]
    _, rois = _inputs(num_rois=300)

    def run(threads: int):
        torch.set_num_threads(threads)
        out = extractor(feats, rois)
        grads = torch.autograd.grad(out.square().sum(), feats)
        return out.detach(), grads

    serial_out, serial_grads = run(1)
    out, grads = run(2)
    assert torch.equal(out, serial_out)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(grads, serial_grads))


def _channels_last_pyramid() -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, 8, 40, 50).contiguous(memory_format=torch.channels_last),
            torch.randn(2, 8, 20, 25).contiguous(memory_format=torch.channels_last)]


def test_channels_last_maps_are_copied_to_nchw_once_per_prediction(monkeypatch):
    from detbox.models.roi_heads import roi_extractor

    copies = []
    nchw_copy = roi_extractor.nchw_copy
    monkeypatch.setattr(roi_extractor, "nchw_copy",
                        lambda feat: copies.append(feat.shape) or nchw_copy(feat))
    box, mask = (MultiLevelRoIExtractor(output_size=s, featmap_strides=(4, 8)) for s in (7, 14))
    feats = _channels_last_pyramid()
    _, rois = _inputs(num_rois=300)
    with torch.no_grad():
        first = box(feats, rois)
        mask(feats, rois)
        assert torch.equal(box(feats, rois), first)
        assert len(copies) == 2  # one per level, shared by both extractors
        feats[0].mul_(2)  # changed in place: copied again
        assert torch.allclose(box(feats, rois), _reference(box, feats, rois))
    assert len(copies) == 3
    with torch.inference_mode():  # no version counter to tell a change: copied every time
        inference_feats = _channels_last_pyramid()
        box(inference_feats, rois)
        box(inference_feats, rois)
    assert len(copies) == 7
    entries = len(memory_layout._COPIES)
    del feats
    assert len(memory_layout._COPIES) == entries - 2  # freed with the maps


def _reference(extractor, feats, rois):
    return extractor([f.contiguous() for f in feats], rois)
