"""Box branches: proposal refinement, and two branches composed into a toy cascade."""

import torch
from torch import nn

from detbox.models.roi_heads import (
    BoxBranch,
    ConvFCBBoxHead,
    MultiLevelRoIExtractor,
    boxes_to_rois,
    refinement_labels,
)
from detbox.models.task_modules.assigners import MaxIoUAssigner
from detbox.models.task_modules.samplers import RandomSampler
from detbox.structures import DetSample, Instances

IMG_SHAPES = [(64, 64), (48, 40)]


def _branch(pos_iou_thr: float, class_agnostic: bool = True) -> BoxBranch:
    return BoxBranch(
        roi_extractor=MultiLevelRoIExtractor(output_size=7, featmap_strides=(4, 8)),
        bbox_head=ConvFCBBoxHead(num_classes=3, in_channels=4, fc_channels=16,
                                 class_agnostic=class_agnostic),
        assigner=MaxIoUAssigner(pos_iou_thr=pos_iou_thr, neg_iou_thr=pos_iou_thr,
                                min_pos_iou=pos_iou_thr),
        sampler=RandomSampler(num=16, pos_fraction=0.5, add_gt_as_proposals=True),
    )


def _feats():
    torch.manual_seed(1)
    return [torch.randn(2, 4, 16, 16), torch.randn(2, 4, 8, 8)]


def _samples() -> list[DetSample]:
    gts = [Instances(boxes=torch.tensor([[8.0, 8, 40, 40]]), labels=torch.tensor([1])),
           Instances(boxes=torch.tensor([[4.0, 6, 30, 36], [20, 2, 38, 20]]),
                     labels=torch.tensor([0, 2]))]
    return [DetSample(image_id=i, file_name="", ori_shape=shape, img_shape=shape, gt=gt)
            for i, (shape, gt) in enumerate(zip(IMG_SHAPES, gts))]


def _proposals() -> list[Instances]:
    boxes = [torch.tensor([[6.0, 10, 42, 38], [0, 0, 20, 20], [30, 30, 60, 60]]),
             torch.tensor([[5.0, 5, 28, 33], [18, 0, 40, 22]])]
    return [Instances(boxes=b, labels=torch.zeros(len(b), dtype=torch.int64)) for b in boxes]


def test_refine_decodes_class_agnostic_deltas_and_drops_nothing():
    branch = _branch(0.5)
    rois = boxes_to_rois([p.boxes for p in _proposals()])
    deltas = torch.zeros(len(rois), 4)
    deltas[0] = torch.tensor([10.0, 0.0, 0.0, 0.0])  # dx 10 * std 0.1: one box width
    refined = branch.refine(rois, torch.zeros(len(rois), dtype=torch.int64), deltas, IMG_SHAPES)
    assert [len(r) for r in refined] == [3, 2]
    expected = branch.bbox_head.box_coder.decode(rois[:, 1:], deltas)
    expected[3:, 0::2] = expected[3:, 0::2].clamp(0, 40)  # the second image is 40 px wide
    expected[:, 0::2] = expected[:, 0::2].clamp(0, 64)
    torch.testing.assert_close(torch.cat([r.boxes for r in refined]), expected)
    assert torch.equal(refined[0].boxes[0], torch.tensor([42.0, 10, 64, 38]))  # clipped at 64
    assert torch.equal(refined[1].boxes, rois[3:, 1:])  # zero deltas: unchanged


def test_refine_uses_each_rois_class_deltas():
    branch = _branch(0.5, class_agnostic=False)
    rois = boxes_to_rois([torch.tensor([[10.0, 10, 20, 20], [10, 10, 20, 20]])])
    deltas = torch.zeros(2, 12)
    deltas[:, 8] = 10.0  # class 2 moves right by one width
    labels = refinement_labels(torch.tensor([2, 3]), torch.tensor([[0.0, 5, 1, 9]] * 2), 3)
    assert labels.tolist() == [2, 1]  # background falls back to the best foreground class
    (refined,) = branch.refine(rois, labels, deltas, [(64, 64)])
    assert refined.boxes.tolist() == [[20.0, 10, 30, 20], [10, 10, 20, 20]]


class _ToyCascade(nn.Module):
    """Two box stages: the second trains on (and predicts from) the first's refined boxes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stages = [_branch(0.5), _branch(0.6)]
        self.bbox_heads = nn.ModuleList([s.bbox_head for s in self.stages])

    def loss(self, feats, proposals, samples):
        gts = [s.gt_or_empty(feats[0].device) for s in samples]
        img_shapes = [s.img_shape for s in samples]
        losses = {}
        for i, stage in enumerate(self.stages):
            results = stage.sample(proposals, gts, samples)
            stage_losses, out = stage.loss(feats, results, gts)
            losses.update({f"s{i}.{k}": v for k, v in stage_losses.items()})
            labels = refinement_labels(out.labels, out.cls_score, stage.num_classes)
            proposals = stage.refine(out.rois, labels, out.bbox_pred, img_shapes)
        return losses, results

    def predict(self, feats, proposals, samples):
        img_shapes = [s.img_shape for s in samples]
        first = self.stages[0].outputs(feats, boxes_to_rois([p.boxes for p in proposals]))
        labels = first.cls_score[:, :3].argmax(1)
        refined = self.stages[0].refine(first.rois, labels, first.bbox_pred, img_shapes)
        return self.stages[1].predict(feats, refined, img_shapes)


def test_two_box_branches_compose_into_a_cascade():
    cascade = _ToyCascade()
    feats, samples = _feats(), _samples()
    losses, last_results = cascade.loss(feats, _proposals(), samples)
    assert set(losses) == {"s0.loss_cls", "s0.loss_bbox", "s1.loss_cls", "s1.loss_bbox"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for head in cascade.bbox_heads:
        assert head.fc_cls.weight.grad is not None and head.fc_cls.weight.grad.abs().sum() > 0
    # The second stage samples from the GT boxes plus every refined RoI of the first stage.
    assert [len(r.boxes) for r in last_results] == [1 + 1 + 3, 2 + 2 + 2]
    cascade.eval()
    for stage in cascade.stages:
        stage.bbox_head.score_thr = 0.0
    with torch.no_grad():
        dets = cascade.predict(feats, _proposals(), samples)
    assert [len(d) > 0 for d in dets] == [True, True]
    for det, (h, w) in zip(dets, IMG_SHAPES):
        assert (det.boxes[:, 0::2] <= w).all() and (det.boxes[:, 1::2] <= h).all()
