"""``preds.json`` records and their COCO results form."""

import torch

from detbox.evaluation import prediction_record, records_to_coco_results
from detbox.structures import Instances


def test_record_and_coco_results():
    masks = torch.zeros((2, 6, 8), dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    instances = Instances(boxes=torch.tensor([[1.0, 2.0, 4.0, 6.0], [0.0, 0.0, 8.0, 6.0]]),
                          labels=torch.tensor([1, 0]), scores=torch.tensor([0.9, 0.5]),
                          masks=masks, mask_iou=torch.tensor([0.8, 0.4]))
    record = prediction_record(instances, 6, 8, ["cat", "dog"], [3, 7])
    assert (record["height"], record["width"]) == (6, 8)
    first = record["predictions"][0]
    assert first["bbox"] == {"x_min": 1.0, "y_min": 2.0, "width": 3.0, "height": 4.0}
    assert first["class"] == {"label": 1, "category_id": 7, "name": "dog"}
    assert abs(first["score"] - 0.9) < 1e-6 and abs(first["iou_score"] - 0.8) < 1e-6
    assert first["mask"]["size"] == [6, 8]
    empty = prediction_record(Instances.empty(with_scores=True), 4, 4, ["cat"], [3])
    results = records_to_coco_results({"a.jpg": record, "b.jpg": empty, "c.jpg": record})
    assert [r["image_id"] for r in results] == [0, 0, 2, 2]
    assert results[0]["file_name"] == "a.jpg" and results[0]["category_id"] == 7
    assert results[0]["bbox"] == [1.0, 2.0, 3.0, 4.0] and "segmentation" in results[0]
