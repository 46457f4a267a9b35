"""RPN head: losses with and without GT, and proposal post-processing."""

import pytest
import torch

from detbox.errors import ConfigError
from detbox.models.dense_heads import RPNHead
from detbox.structures import DetSample, Instances


def _sample(boxes=None, shape=(64, 64)) -> DetSample:
    gt = Instances.empty()
    if boxes is not None:
        gt = Instances(
            boxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.zeros(len(boxes), dtype=torch.int64),
        )
    return DetSample(image_id=0, file_name="", ori_shape=shape, img_shape=shape, gt=gt)


def _head(**kwargs) -> RPNHead:
    torch.manual_seed(0)
    kwargs.setdefault(
        "anchor_generator",
        {"type": "AnchorGenerator", "strides": [8, 16], "ratios": [0.5, 1.0, 2.0], "scales": [4]},
    )
    return RPNHead(in_channels=4, feat_channels=4, **kwargs)


def _feats():
    torch.manual_seed(1)
    return [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)]


def test_empty_gt_trains_objectness_only():
    losses = _head().loss(_feats(), [_sample()])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    assert losses["loss_rpn_cls"] > 0
    assert losses["loss_rpn_bbox"].item() == 0.0 and losses["loss_rpn_bbox"].requires_grad


def test_one_gt_gives_both_losses():
    head = _head()
    losses = head.loss(_feats(), [_sample([[10.0, 12, 40, 44]])])
    assert losses["loss_rpn_cls"] > 0 and losses["loss_rpn_bbox"] > 0
    sum(losses.values()).backward()
    assert head.box_deltas.weight.grad.abs().sum() > 0


def _crafted_outputs():
    """Level 0 (2x2, stride 16) and level 1 (1x1, stride 32), one square anchor per cell.

    Decoded with zero deltas and clipped to the 32x32 image, the proposals are level 0:
    [0,0,16,16], [0,0,32,16], [0,0,16,32], [0,0,32,32] and level 1: [0,0,32,32].
    """
    cls = [torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]]), torch.tensor([[[[0.0]]]])]
    deltas = [torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 1, 1)]
    return cls, deltas


def _crafted_head(**settings) -> RPNHead:
    return _head(
        anchor_generator={
            "type": "AnchorGenerator",
            "strides": [16, 32],
            "ratios": [1.0],
            "scales": [2],
        },
        test_proposals={"nms_pre": 10, "max_per_img": 10, **settings},
    )


def test_nms_runs_within_each_level_only():
    cls, deltas = _crafted_outputs()
    (props,) = _crafted_head().predict_by_outputs(cls, deltas, [_sample(shape=(32, 32))])
    assert len(props) == 5  # the identical boxes of the two levels both survive
    assert (props.boxes == torch.tensor([0.0, 0, 32, 32])).all(dim=1).sum() == 2
    assert torch.equal(props.scores, props.scores.sort(descending=True).values)
    assert torch.allclose(props.scores[0], torch.sigmoid(torch.tensor(4.0)))
    assert props.labels.tolist() == [0] * 5


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"max_per_img": 3}, 3),
        ({"nms_pre": 2}, 3),  # two from level 0, one from level 1
        ({"min_box_size": 20.0}, 2),
        ({"nms_iou_thr": 0.4}, 3),  # [0,0,16,16] suppresses the two half-overlapping boxes
        ({"score_thr": 0.6}, 4),  # the level-1 box has probability 0.5
    ],
)
def test_proposal_settings(settings, expected):
    cls, deltas = _crafted_outputs()
    head = _crafted_head(**settings)
    (props,) = head.predict_by_outputs(cls, deltas, [_sample(shape=(32, 32))])
    assert len(props) == expected


def test_loss_and_predict_uses_train_settings():
    head = _head(train_proposals={"nms_pre": 5, "max_per_img": 4})
    losses, proposals = head.loss_and_predict(_feats(), [_sample([[10.0, 12, 40, 44]])])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    assert len(proposals[0]) <= 4 and not proposals[0].boxes.requires_grad
    assert len(head.predict(_feats(), [_sample()])[0]) > 4  # test settings: up to 1000


def test_unknown_proposal_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="max_per_image"):
        _head(test_proposals={"max_per_image": 10})
