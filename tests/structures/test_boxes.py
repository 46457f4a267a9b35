"""Box geometry shared by transforms, detectors and evaluators (detbox.structures.boxes)."""

import pytest
import torch

from detbox.structures import DetSample, Instances, boxes_to_original, flip_boxes


def test_flip_boxes_directions_and_identity():
    boxes = torch.tensor([[1.0, 2, 3, 4]])
    assert flip_boxes(boxes, (10, 20), "horizontal").tolist() == [[17.0, 2, 19, 4]]
    assert flip_boxes(boxes, (10, 20), "vertical").tolist() == [[1.0, 6, 3, 8]]
    assert flip_boxes(boxes, (10, 20), "diagonal").tolist() == [[17.0, 6, 19, 8]]
    assert flip_boxes(boxes, (10, 20), None) is boxes
    for direction in ("horizontal", "vertical", "diagonal"):  # a flip is its own inverse
        twice = flip_boxes(flip_boxes(boxes, (10, 20), direction), (10, 20), direction)
        assert torch.equal(twice, boxes)
    with pytest.raises(ValueError, match="flip direction"):
        flip_boxes(boxes, (10, 20), "sideways")


def test_boxes_to_original_unflips_before_unscaling_and_clips_only_when_asked():
    boxes = torch.tensor([[10.0, 5, 50, 25], [0, 0, 420, 50]])
    # Unflip in the 400-wide resized image (x -> 400 - x), then divide by (sx, sy) = (2, 0.5).
    restored = boxes_to_original(boxes, (50, 400), (2.0, 0.5), "horizontal")
    assert restored.tolist() == [[175.0, 10, 195, 50], [-10.0, 0, 200, 100]]
    clipped = boxes_to_original(boxes, (50, 400), (2.0, 0.5), "horizontal", ori_shape=(100, 200))
    assert clipped.tolist() == [[175.0, 10, 195, 50], [0.0, 0, 200, 100]]


def test_gt_or_empty_gives_an_empty_set_for_images_without_objects():
    sample = DetSample(image_id=1, file_name="a.png", ori_shape=(4, 4), img_shape=(4, 4))
    empty = sample.gt_or_empty("cpu")
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.labels.dtype == torch.int64
    gt = Instances(boxes=torch.tensor([[0.0, 0, 2, 2]]), labels=torch.tensor([1]))
    sample.gt = gt
    assert sample.gt_or_empty() is gt
    assert torch.equal(sample.gt_or_empty("cpu").boxes, gt.boxes)
