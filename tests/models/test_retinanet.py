from pathlib import Path

import pytest
import torch
import torchvision

from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.models.detectors import RetinaNet, rescale_to_original
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

from ._helpers import make_sample, rectangle_image, tiny_retinanet_cfg

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny_retinanet(seed: int = 0) -> RetinaNet:
    torch.manual_seed(seed)
    return MODELS.build(tiny_retinanet_cfg())


def test_a_few_sgd_steps_reduce_the_loss():
    model = tiny_retinanet().train()
    batch = ImageBatch(
        images=rectangle_image((16, 16, 48, 48)), samples=[make_sample([[16.0, 16, 48, 48]], [1])]
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    totals = []
    for _ in range(10):
        losses = model.loss(batch)
        total = losses["loss_cls"] + losses["loss_bbox"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert set(losses) == {"loss_cls", "loss_bbox"}
    assert min(totals[-3:]) < totals[0] * 0.85, totals


def test_forward_returns_raw_head_outputs():
    model = tiny_retinanet().eval()
    feats = model.extract_feat(torch.zeros(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2),
                                               (2, 32, 1, 1), (2, 32, 1, 1)]
    cls_logits, box_deltas = model(torch.zeros(2, 3, 64, 64))
    assert cls_logits[0].shape == (2, 9 * 2, 8, 8) and box_deltas[-1].shape == (2, 9 * 4, 1, 1)


def test_rescale_to_original_undoes_flip_then_scale():
    sample = make_sample(img_shape=(50, 400), ori_shape=(100, 200), scale_factor=(2.0, 0.5),
                         flip="horizontal")
    instances = Instances(boxes=torch.tensor([[10.0, 5, 50, 25], [0, 0, 400, 50]]),
                          labels=torch.tensor([0, 1]), scores=torch.tensor([0.9, 0.8]))
    result = rescale_to_original(instances, sample)
    # Unflip in the 400-wide image: x -> 400 - x; then divide by (2, 0.5); clip to 200 x 100.
    assert result.boxes.tolist() == [[175.0, 10, 195, 50], [0, 0, 200, 100]]
    assert torch.equal(result.scores, instances.scores) and torch.equal(
        instances.boxes[0], torch.tensor([10.0, 5, 50, 25])
    )


def test_predict_maps_head_results_to_original_coordinates(monkeypatch):
    model = tiny_retinanet().eval()
    in_image = Instances(boxes=torch.tensor([[8.0, 4, 24, 20]]), labels=torch.tensor([1]),
                         scores=torch.tensor([0.7]))
    monkeypatch.setattr(model.bbox_head, "predict", lambda feats, samples: [in_image])
    sample = make_sample(img_shape=(64, 64), ori_shape=(32, 128), scale_factor=(0.5, 2.0),
                         flip="horizontal")
    (result,) = model.predict(ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[sample]))
    assert result.boxes.tolist() == [[80.0, 2, 112, 10]]
    assert result.labels.tolist() == [1] and result.scores.tolist() == pytest.approx([0.7])


def test_predict_end_to_end_stays_inside_the_original_image():
    model = tiny_retinanet().eval()
    torch.nn.init.zeros_(model.bbox_head.cls_logits.bias)
    sample = make_sample(img_shape=(64, 48), ori_shape=(40, 30), scale_factor=(1.6, 1.6),
                         flip="horizontal")
    with torch.no_grad():
        (result,) = model.predict(ImageBatch(images=torch.randn(1, 3, 64, 64), samples=[sample]))
    assert len(result) > 0
    assert result.boxes[:, 0::2].max() <= 30 and result.boxes[:, 1::2].max() <= 40
    assert result.boxes.min() >= 0


def test_init_cfg_loads_backbone_checkpoint(tmp_path):
    torch.manual_seed(0)
    weights = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(weights, tmp_path / "r18.pth")
    cfg = tiny_retinanet_cfg()
    cfg["backbone"]["norm"] = "FrozenBN"
    cfg["init_cfg"] = {"backbone_checkpoint": str(tmp_path / "r18.pth")}
    model = MODELS.build(cfg)
    model.init_weights()  # construction reads no checkpoint; training calls this first
    assert torch.equal(model.backbone.layer2[0].conv1.weight, weights["layer2.0.conv1.weight"])
    cfg["init_cfg"] = {"checkpoint": "x.pth"}
    with pytest.raises(ConfigError, match="backbone_checkpoint"):
        MODELS.build(cfg)


@pytest.mark.parametrize("name", ["demo/retinanet_r18_fpn_synthetic.py",
                                  "retinanet/retinanet_r50_fpn_1x_coco.py"])
def test_shipped_configs_build(name):
    path = CONFIGS / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    model_cfg = load_config(path).model.to_dict()
    model_cfg["bbox_head"]["num_classes"] = 3  # normally filled in from the dataset
    model = MODELS.build(model_cfg)
    assert isinstance(model, RetinaNet) and model.num_classes == 3
    batch = ImageBatch(images=rectangle_image((8, 8, 40, 56)),
                       samples=[make_sample([[8.0, 8, 40, 56]], [2])])
    losses = model.train().loss(batch)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
