"""Box, mask and MaskIoU heads: targets, empty-GT and one-GT losses, post-processing."""

import torch

from detbox.models.roi_heads import (
    ConvFCBBoxHead,
    FCNMaskHead,
    MaskIoUHead,
    StandardRoIHead,
    boxes_to_rois,
    crop_mask_targets,
    mask_iou_targets,
)
from detbox.models.roi_heads.mask_iou_head import mask_area_inside_boxes
from detbox.models.roi_heads.targets import SamplingResult
from detbox.structures import DetSample, Instances

from ._tiny import box_mask


def _proposals(boxes) -> Instances:
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return Instances(
        boxes=boxes,
        labels=torch.zeros(len(boxes), dtype=torch.int64),
        scores=torch.ones(len(boxes)),
    )


def _sample(with_gt: bool) -> DetSample:
    gt = Instances.empty()
    if with_gt:
        gt = Instances(
            boxes=torch.tensor([[8.0, 8, 40, 40]]),
            labels=torch.tensor([1]),
            masks=box_mask((8, 8, 40, 40), (64, 64))[None],
        )
    return DetSample(image_id=0, file_name="", ori_shape=(64, 64), img_shape=(64, 64), gt=gt)


def _roi_head(with_mask_iou: bool = True) -> StandardRoIHead:
    torch.manual_seed(0)
    return StandardRoIHead(
        bbox_head={
            "type": "Shared2FCBBoxHead",
            "num_classes": 3,
            "in_channels": 4,
            "fc_channels": 16,
        },
        mask_head={
            "type": "FCNMaskHead",
            "num_classes": 3,
            "in_channels": 4,
            "num_convs": 1,
            "conv_channels": 4,
        },
        mask_iou_head={
            "type": "MaskIoUHead",
            "num_classes": 3,
            "in_channels": 4,
            "num_convs": 1,
            "conv_channels": 4,
            "fc_channels": 8,
        }
        if with_mask_iou
        else None,
        sampler={
            "type": "RandomSampler",
            "num": 32,
            "pos_fraction": 0.25,
            "add_gt_as_proposals": True,
        },
    )


def _one_positive_one_negative() -> tuple[SamplingResult, Instances]:
    """RoI 0 matches the one GT box (class 2, shifted 1 px right), RoI 1 is background."""
    res = SamplingResult(
        boxes=torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]),
        pos_inds=torch.tensor([0]),
        neg_inds=torch.tensor([1]),
        pos_gt_inds=torch.tensor([0]),
    )
    gt = Instances(boxes=torch.tensor([[1.0, 0, 11, 10]]), labels=torch.tensor([2]))
    return res, gt


def _feats():
    torch.manual_seed(1)
    return [torch.randn(1, 4, 64 // s, 64 // s) for s in (4, 8, 16, 32, 64)]


def test_empty_gt_gives_classification_loss_only():
    head = _roi_head()
    losses = head.loss(
        _feats(), [_proposals([[0.0, 0, 20, 20], [30, 30, 60, 60]])], [_sample(with_gt=False)]
    )
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_mask", "loss_mask_iou"}
    assert losses["loss_cls"] > 0
    for key in ("loss_bbox", "loss_mask", "loss_mask_iou"):
        assert losses[key].item() == 0.0 and losses[key].requires_grad
    sum(losses.values()).backward()


def test_one_gt_gives_every_loss():
    head = _roi_head()
    proposals = _proposals([[9.0, 7, 41, 39], [0, 0, 20, 20], [30, 30, 60, 60]])
    losses = head.loss(_feats(), [proposals], [_sample(with_gt=True)])
    for key in ("loss_cls", "loss_bbox", "loss_mask", "loss_mask_iou"):
        assert losses[key].item() > 0, key
    sum(losses.values()).backward()
    assert head.mask_iou_head.fc_iou.weight.grad is not None


def test_no_proposals_and_no_gt_still_trains():
    head = _roi_head()
    losses = head.loss(_feats(), [_proposals([])], [_sample(with_gt=False)])
    assert all(v.item() == 0.0 for v in losses.values())


def test_bbox_head_targets_background_last_and_encoded():
    head = ConvFCBBoxHead(num_classes=3, in_channels=4, roi_size=7, fc_channels=8)
    res, gt = _one_positive_one_negative()
    labels, targets = head.get_targets([res], [gt])
    assert labels.tolist() == [2, 3]
    # dx = 1 / 10, divided by the std 0.1.
    assert torch.allclose(targets, torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]), atol=1e-5)


def test_bbox_head_predict_thresholds_and_keeps_max_per_img():
    head = ConvFCBBoxHead(
        num_classes=2, in_channels=4, roi_size=7, fc_channels=8, score_thr=0.3, max_per_img=1
    )
    rois = boxes_to_rois([torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])])
    cls_score = torch.tensor([[5.0, 0, 0], [0, 0, 5]])  # second RoI: background
    (det,) = head.predict_by_outputs(cls_score, torch.zeros(2, 8), rois, [(64, 64)])
    assert det.labels.tolist() == [0] and torch.allclose(det.boxes, rois[:1, 1:])
    head.score_thr = 0.999
    (det,) = head.predict_by_outputs(cls_score, torch.zeros(2, 8), rois, [(64, 64)])
    assert len(det) == 0 and det.boxes.shape == (0, 4)


def test_mask_targets_are_box_crops():
    gt_masks = box_mask((10, 10, 30, 30), (40, 40))[None]
    # The box's left half overlaps the object.
    targets = crop_mask_targets(gt_masks, torch.tensor([[20.0, 10, 40, 30]]), torch.tensor([0]), 4)
    assert targets.tolist() == [[[1.0, 1, 0, 0]] * 4]


def test_mask_head_losses_and_class_selection():
    torch.manual_seed(0)
    head = FCNMaskHead(num_classes=3, in_channels=4, roi_size=7, num_convs=1, conv_channels=4)
    logits = head(torch.randn(2, 4, 7, 7))
    assert logits.shape == (2, 3, 14, 14)
    labels = torch.tensor([2, 0])
    assert torch.equal(head.select(logits, labels)[0], logits[0, 2])
    loss = head.loss_by_outputs(logits, torch.ones(2, 14, 14), labels)["loss_mask"]
    assert loss.item() > 0
    empty = head.loss_by_outputs(logits[:0], torch.ones(0, 14, 14), labels[:0])["loss_mask"]
    assert empty.item() == 0.0 and empty.requires_grad


def test_mask_iou_targets_golden():
    pred = torch.zeros(1, 4, 4)
    pred[0, :, :2] = 0.9  # predicted: the left half (8 pixels)
    target = torch.zeros(1, 4, 4)
    target[0, :2, :] = 1  # GT crop: the top half (8 pixels), overlap 4
    # Whole GT inside the box: IoU = 4 / (8 + 8 - 4).
    assert torch.allclose(
        mask_iou_targets(pred, target, torch.tensor([1.0])), torch.tensor([1 / 3])
    )
    # Only half the GT is inside the box: its full area is 16, IoU = 4 / (8 + 16 - 4).
    assert torch.allclose(mask_iou_targets(pred, target, torch.tensor([0.5])), torch.tensor([0.2]))
    assert mask_iou_targets(pred, target, torch.tensor([0.0])).item() == 0.0


def test_mask_area_inside_boxes():
    masks = box_mask((0, 0, 10, 10), (20, 20))[None]
    ratios = mask_area_inside_boxes(
        masks,
        torch.tensor([[0.0, 0, 5, 10], [0, 0, 20, 20], [15, 15, 20, 20]]),
        torch.tensor([0, 0, 0]),
    )
    assert torch.allclose(ratios, torch.tensor([0.5, 1.0, 0.0]))


def test_mask_iou_head_shapes_and_losses():
    torch.manual_seed(0)
    head = MaskIoUHead(
        num_classes=3, in_channels=4, roi_size=14, num_convs=2, conv_channels=4, fc_channels=8
    )
    iou_pred = head(torch.randn(2, 4, 14, 14), torch.rand(2, 28, 28))
    assert iou_pred.shape == (2, 3)
    labels = torch.tensor([1, 2])
    loss = head.loss_by_outputs(iou_pred, labels, torch.tensor([0.5, 0.8]))["loss_mask_iou"]
    expected = 0.5 * ((head.select(iou_pred, labels) - torch.tensor([0.5, 0.8])) ** 2).mean()
    assert torch.allclose(loss, expected)
    empty = head.loss_by_outputs(iou_pred[:0], labels[:0], torch.zeros(0))["loss_mask_iou"]
    assert empty.item() == 0.0
    predicted = head.predict_by_outputs(iou_pred, labels)
    assert ((predicted >= 0) & (predicted <= 1)).all()


def test_roi_head_predict_attaches_masks_and_mask_iou():
    head = _roi_head().eval()
    for bbox_score_thr, expect_any in ((0.0, True), (1.0, False)):
        head.bbox_head.score_thr = bbox_score_thr
        with torch.no_grad():
            (det,) = head.predict(
                _feats(), [_proposals([[8.0, 8, 40, 40], [0, 0, 20, 30]])], [_sample(with_gt=False)]
            )
        assert (len(det) > 0) == expect_any
        assert det.masks.shape == (len(det), 28, 28)
        assert det.mask_iou.shape == (len(det),)


def test_class_agnostic_and_decoded_box_regression():
    torch.manual_seed(0)
    head = ConvFCBBoxHead(
        num_classes=3,
        in_channels=4,
        roi_size=7,
        fc_channels=8,
        class_agnostic=True,
        reg_decoded_bbox=True,
        loss_bbox={"type": "GIoULoss"},
    )
    cls_score, bbox_pred = head(torch.randn(2, 4, 7, 7))
    assert bbox_pred.shape == (2, 4)
    res, gt = _one_positive_one_negative()
    labels, targets = head.get_targets([res], [gt])
    assert torch.equal(targets[0], gt.boxes[0])  # decoded targets are the GT boxes
    rois = boxes_to_rois([res.sampled_boxes])
    losses = head.loss_by_outputs(cls_score, bbox_pred, rois, labels, targets)
    assert losses["loss_bbox"] > 0
    boxes = head.decode_boxes(rois, bbox_pred, (64, 64))
    assert boxes.shape == (2, 3, 4) and torch.equal(boxes[:, 0], boxes[:, 2])
