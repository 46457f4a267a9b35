"""SSD detectors end to end: backbones, training steps, prediction, conversion details."""

from __future__ import annotations

import pytest
import torch
import torchvision

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones import SSDVGG, SSDMobileNetV3
from detbox.models.weight_conversion import convert_torchvision_state_dict
from detbox.structures import DetSample, ImageBatch, Instances
from tests.models._helpers import make_sample
from tests.models.one_stage._tiny_ssd import TINY_SSD300, TINY_SSDLITE, build_tiny_ssd


def _batch(size: int, samples: list[DetSample], pad_to: int | None = None) -> ImageBatch:
    torch.manual_seed(2)
    side = pad_to or size
    images = torch.zeros(len(samples), 3, side, side)
    images[..., :size, :size] = torch.randn(len(samples), 3, size, size)
    return ImageBatch(images=images, samples=samples)


@pytest.mark.parametrize(("input_size", "sizes"), [
    (300, [38, 19, 10, 5, 3, 1]), (512, [64, 32, 16, 8, 4, 2, 1])])
def test_vgg_maps_follow_the_paper(input_size, sizes):
    backbone = SSDVGG(input_size=input_size, width_mult=0.0625)
    maps = backbone(torch.zeros(1, 3, input_size, input_size))
    assert [m.shape[-1] for m in maps] == sizes
    assert [m.shape[1] for m in maps] == backbone.out_channels
    # conv4_3 is L2-normalised then scaled by 20 per channel
    norms = maps[0].norm(dim=1)
    assert torch.allclose(norms[norms > 0], torch.tensor(20.0))


def test_vgg_loads_torchvision_feature_weights_and_rejects_other_names():
    backbone = SSDVGG()
    vgg = torchvision.models.vgg16().features[:30]  # conv1_1 .. relu5_3
    source = {f"features.{k}": v for k, v in vgg.state_dict().items()}
    source["classifier.0.weight"] = torch.zeros(2, 2)
    backbone.load_torchvision_weights(source)
    assert torch.equal(backbone.features[21].weight, vgg[21].weight)  # conv4_3
    assert torch.equal(backbone.conv5[5].weight, vgg[28].weight)  # conv5_3
    with pytest.raises(ConfigError, match="vgg16_features"):
        backbone.load_torchvision_weights("torchvision://resnet50")
    with pytest.raises(CheckpointError, match="lacks"):
        backbone.load_torchvision_weights({"features.0.weight": torch.zeros(1)})


def test_mobilenet_maps_and_imagenet_weights():
    backbone = SSDMobileNetV3(width_mult=0.25, reduced_tail=True).eval()
    maps = backbone(torch.zeros(1, 3, 320, 320))
    assert [m.shape[-1] for m in maps] == [20, 10, 5, 3, 2, 1]
    assert [m.shape[1] for m in maps] == backbone.out_channels
    with pytest.raises(ConfigError, match="reduced_tail=False"):
        backbone.load_torchvision_weights({})
    full = SSDMobileNetV3()
    imagenet = torchvision.models.mobilenet_v3_large().state_dict()
    full.load_torchvision_weights(imagenet)
    torch.testing.assert_close(full.features[1][-1][0].weight, imagenet["features.16.0.weight"])


@pytest.mark.parametrize("model_cfg", [TINY_SSD300, TINY_SSDLITE], ids=["ssd300", "ssdlite"])
def test_a_few_training_steps_lower_the_loss(model_cfg):
    size = 300 if model_cfg is TINY_SSD300 else 320
    model = build_tiny_ssd(model_cfg).train()
    samples = [make_sample([[40.0, 60, 200, 220], [150, 20, 290, 120]], [0, 2],
                           img_shape=(size, size)),
               make_sample(img_shape=(size, size))]
    batch = _batch(size, samples)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    losses = []
    for _ in range(4):
        loss = model.loss(batch)
        assert set(loss) == {"loss_cls", "loss_bbox"}
        total = sum(loss.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < losses[0]


def test_loss_without_any_gt_is_finite_zero():
    model = build_tiny_ssd().train()
    loss = model.loss(_batch(300, [make_sample(img_shape=(300, 300))]))
    assert all(torch.isfinite(v) and v.item() == 0 for v in loss.values())
    sum(loss.values()).backward()


def test_padding_to_32_changes_nothing():
    model = build_tiny_ssd()
    sample = make_sample(img_shape=(300, 300), ori_shape=(240, 320), scale_factor=(300 / 320,
                                                                                    300 / 240))
    with torch.no_grad():
        plain = model.predict(_batch(300, [sample]))[0]
        padded = model.predict(_batch(300, [sample], pad_to=320))[0]
    assert len(plain) > 0
    torch.testing.assert_close(padded.boxes, plain.boxes)
    torch.testing.assert_close(padded.scores, plain.scores)
    assert plain.boxes[:, 0::2].max() <= 320 and plain.boxes[:, 1::2].max() <= 240


def test_predict_on_an_empty_image():
    model = build_tiny_ssd()
    with torch.no_grad():
        model.bbox_head.score_thr = 1.0
        result = model.predict(ImageBatch(images=torch.zeros(1, 3, 300, 300),
                                          samples=[make_sample(img_shape=(300, 300))]))[0]
    assert isinstance(result, Instances) and len(result) == 0


def test_ssdlite_conversion_moves_background_last_per_prior():
    torch.manual_seed(0)
    tv = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3)
    state = tv.state_dict()
    converted = convert_torchvision_state_dict("ssdlite320_mobilenet_v3_large", state)
    bias = state["head.classification_head.module_list.2.1.bias"]  # 6 priors x 3 slots
    expected = bias.view(6, 3)[:, [1, 2, 0]].reshape(-1)
    assert torch.equal(converted["bbox_head.cls_convs.2.3.bias"], expected)
    assert torch.equal(converted["bbox_head.reg_convs.0.1.running_var"],
                       state["head.regression_head.module_list.0.0.1.running_var"])
    model = build_tiny_ssd({**TINY_SSDLITE, "backbone": {"type": "SSDMobileNetV3",
                                                         "reduced_tail": True},
                            "bbox_head": {**TINY_SSDLITE["bbox_head"], "num_classes": 2}})
    model.load_state_dict(converted)  # every key fits, nothing left over
    with pytest.raises(CheckpointError, match="no detbox counterpart"):
        convert_torchvision_state_dict("ssdlite320_mobilenet_v3_large",
                                       {**state, "head.extra.weight": bias})


def test_config_typos_name_the_key():
    from detbox.registry import MODELS

    with pytest.raises(ConfigError, match="expected one of 300, 512"):
        MODELS.build({"type": "SSDVGG", "input_size": 400})
    with pytest.raises(ConfigError, match="Did you mean 'in_channels'"):
        MODELS.build({"type": "SSDHead", "num_classes": 3, "in_channel": [8]})
