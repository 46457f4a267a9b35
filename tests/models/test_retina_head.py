from types import SimpleNamespace

import torch
from torchvision.models.detection import RetinaNet as TVRetinaNet
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

from detbox.models.dense_heads import RetinaHead
from detbox.registry import MODELS

from ._helpers import make_sample, tiny_retina_head_cfg

SIZES = [(8, 8), (4, 4), (2, 2)]  # a 64x64 image at strides 8, 16, 32


def tiny_head(**overrides) -> RetinaHead:
    torch.manual_seed(0)
    return MODELS.build(tiny_retina_head_cfg(**overrides))


def feats(batch: int = 1, channels: int = 8, sizes=SIZES) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(batch, channels, h, w) for h, w in sizes]


def test_forward_shapes():
    head = tiny_head(num_classes=3)
    cls_logits, box_deltas = head(feats(batch=2))
    assert [tuple(x.shape) for x in cls_logits] == [(2, 27, h, w) for h, w in SIZES]
    assert [tuple(x.shape) for x in box_deltas] == [(2, 36, h, w) for h, w in SIZES]
    prior = torch.sigmoid(head.cls_logits.bias)
    torch.testing.assert_close(prior, torch.full_like(prior, 0.01))


def test_empty_gt_loss_is_classification_only():
    head = tiny_head()
    losses = head.loss(feats(), [make_sample()])
    assert set(losses) == {"loss_cls", "loss_bbox"}
    assert losses["loss_cls"].item() > 0
    assert losses["loss_bbox"].item() == 0 and losses["loss_bbox"].grad_fn is not None
    sum(losses.values()).backward()
    assert head.cls_logits.weight.grad.abs().sum() > 0


def test_one_gt_loss_and_gradients():
    head = tiny_head()
    losses = head.loss(feats(), [make_sample([[16.0, 16, 48, 48]], [1])])
    assert losses["loss_cls"].item() > 0 and losses["loss_bbox"].item() > 0
    sum(losses.values()).backward()
    for module in (head.cls_convs[0], head.reg_convs[0], head.cls_logits, head.box_deltas):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_batch_mixes_empty_and_non_empty_images():
    head = tiny_head()
    samples = [make_sample(), make_sample([[16.0, 16, 48, 48]], [0])]
    losses = head.loss(feats(batch=2), samples)
    assert losses["loss_cls"].item() > 0 and losses["loss_bbox"].item() > 0


def test_ignored_region_removes_anchors_from_the_loss():
    head = tiny_head()
    everything = [[-200.0, -200, 300, 300]]
    losses = head.loss(feats(), [make_sample(ignored=everything)])
    assert losses["loss_cls"].item() == 0


def test_giou_on_decoded_boxes():
    head = tiny_head(loss_bbox={"type": "GIoULoss", "loss_weight": 2.0}, reg_decoded_bbox=True)
    losses = head.loss(feats(), [make_sample([[10.0, 12, 40, 50]], [0])])
    assert losses["loss_bbox"].item() > 0
    losses["loss_bbox"].backward()
    assert head.box_deltas.weight.grad.abs().sum() > 0


def test_predict_returns_sorted_clipped_instances():
    head = tiny_head(num_classes=3, max_per_img=20)
    torch.nn.init.zeros_(head.cls_logits.bias)  # every score near 0.5: plenty of candidates
    results = head.predict(feats(batch=2), [make_sample(img_shape=(60, 50)), make_sample()])
    assert len(results) == 2
    first = results[0]
    assert 0 < len(first) <= 20
    assert first.scores is not None and torch.all(first.scores[:-1] >= first.scores[1:])
    assert first.boxes[:, 0::2].max() <= 50 and first.boxes[:, 1::2].max() <= 60
    assert first.boxes.min() >= 0 and first.labels.max() < 3


def test_predict_with_nothing_above_threshold():
    head = tiny_head(score_thr=0.999)
    (result,) = head.predict(feats(), [make_sample()])
    assert len(result) == 0 and result.boxes.shape == (0, 4) and result.scores.shape == (0,)


def test_post_processing_matches_torchvision_retinanet():
    sizes = tuple(
        (x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in [32, 64, 128, 256, 512]
    )
    head = tiny_head(
        num_classes=3,
        anchor_generator={"type": "AnchorGenerator", "strides": [8, 16, 32, 64, 128],
                          "sizes": sizes, "round_base": True},
        score_thr=0.05, nms_pre=1000, nms_iou_thr=0.5, max_per_img=300,
    )
    torch.nn.init.normal_(head.cls_logits.weight, std=0.5)
    torch.nn.init.zeros_(head.cls_logits.bias)
    torch.nn.init.normal_(head.box_deltas.weight, std=0.2)
    level_sizes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    samples = [make_sample(img_shape=(200, 240)), make_sample(img_shape=(256, 256))]
    with torch.no_grad():
        cls_logits, box_deltas = head(feats(batch=2, sizes=level_sizes))
        ours = head.predict_by_outputs(cls_logits, box_deltas, samples)
        anchors = head.anchors(cls_logits)
        tv_self = SimpleNamespace(score_thresh=0.05, topk_candidates=1000, nms_thresh=0.5,
                                  detections_per_img=300,
                                  box_coder=TVBoxCoder((1.0, 1.0, 1.0, 1.0)))
        outputs = {
            "cls_logits": [x.permute(0, 2, 3, 1).reshape(2, -1, 3) for x in cls_logits],
            "bbox_regression": [x.permute(0, 2, 3, 1).reshape(2, -1, 4) for x in box_deltas],
        }
        # torchvision reads outputs[key][level] as (B, H*W*A, K) and anchors[image][level].
        expected = TVRetinaNet.postprocess_detections(
            tv_self, outputs, [anchors, anchors], [s.img_shape for s in samples]
        )
    for result, reference in zip(ours, expected):
        assert len(result) > 100
        assert torch.equal(result.boxes, reference["boxes"])
        assert torch.equal(result.scores, reference["scores"])
        assert torch.equal(result.labels, reference["labels"])



def test_losses_match_torchvision_retinanet_head():
    """The focal and box losses (and their gradients) equal torchvision's ``compute_loss`` on
    the same outputs, anchors and matches: one image, so both normalize by its positives."""
    from torchvision.models.detection._utils import Matcher
    from torchvision.models.detection.retinanet import (
        RetinaNetClassificationHead,
        RetinaNetRegressionHead,
    )
    from torchvision.ops import box_iou

    head = tiny_head(num_classes=3)
    torch.nn.init.normal_(head.cls_logits.weight, std=0.5)
    sample = make_sample([[10.0, 12, 40, 50], [30, 8, 62, 30]], [2, 0])
    cls_logits, box_deltas = head(feats())
    ours = head.loss_by_outputs(cls_logits, box_deltas, [sample])
    our_grads = torch.autograd.grad(sum(ours.values()), [*cls_logits, *box_deltas])

    anchors = torch.cat(head.anchors(cls_logits))
    logits = torch.cat([x.permute(0, 2, 3, 1).reshape(1, -1, 3) for x in cls_logits], dim=1)
    deltas = torch.cat([x.permute(0, 2, 3, 1).reshape(1, -1, 4) for x in box_deltas], dim=1)
    targets = [{"boxes": sample.gt.boxes, "labels": sample.gt.labels}]
    matched = [Matcher(0.5, 0.4, allow_low_quality_matches=True)(
        box_iou(sample.gt.boxes, anchors))]
    outputs = {"cls_logits": logits, "bbox_regression": deltas}
    loss_cls = RetinaNetClassificationHead(8, 9, 3).compute_loss(targets, outputs, matched)
    loss_bbox = RetinaNetRegressionHead(8, 9).compute_loss(targets, outputs, [anchors], matched)
    assert int((matched[0] >= 0).sum()) >= 2 and int((matched[0] == -2).sum()) > 0
    torch.testing.assert_close(ours["loss_cls"], loss_cls)
    torch.testing.assert_close(ours["loss_bbox"], loss_bbox)
    tv_grads = torch.autograd.grad(loss_cls + loss_bbox, [*cls_logits, *box_deltas])
    for grad, expected in zip(our_grads, tv_grads):
        torch.testing.assert_close(grad, expected)
