"""tools/dist_train.sh and tools/dist_test.sh under real torchrun, two CPU processes, with the
demo RetinaNet: one distributed step equals one process applying the mean of the two per-image
gradients, only rank 0 writes, and distributed testing gives single-process results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from detbox.cli.main import main
from tests.conftest import REPO_ROOT

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
LR = 0.01
OPTIONS = [
    "train_dataloader.dataset.num_images=2", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=1", "train_dataloader.num_workers=0",
    "train_dataloader.dataset.pipeline=list(test_pipeline)",  # no random flip: comparable
    f"optimizer=dict(type='SGD', lr={LR})", "lr_schedule=dict(policy='constant', warmup=None)",
    "train_cfg.grad_clip=None", "train_cfg.max_epochs=1", "log.interval=1",
    "val_dataloader.dataset.num_images=5", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "val_dataloader.batch_size=2",
    "model.bbox_head.score_thr=0.0",  # every image gets detections, so every image shows
]

pytestmark = [
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                       reason="torch.distributed with the gloo backend is not available"),
    pytest.mark.slow,
]


def _run_script(script: str, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(["bash", str(REPO_ROOT / "tools" / script), *args], env=env,
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} failed:\n{output[-6000:]}"
    return output


def _demo_model():
    from detbox.apis.build import build_detector, fill_num_classes
    from detbox.config import load_config

    cfg = load_config(DEMO)
    names = ["circle", "square", "triangle"]
    fill_num_classes(cfg, names, source="test")
    return build_detector(cfg.model, names, [1, 2, 3])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scripts")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "DETBOX_CACHE": str(root / "cache")}
    torch.manual_seed(0)
    torch.save({"state_dict": _demo_model().state_dict()}, root / "init.pth")
    output = _run_script("dist_train.sh", DEMO, "2", "--device", "cpu", "--work-dir",
                         str(root / "work"), "--load-from", str(root / "init.pth"),
                         "--cfg-options", *OPTIONS, "val_dataloader=None", env=env)
    (root / "train_output.txt").write_text(output)
    checkpoint = str(root / "work" / "latest.pth")
    _run_script("dist_test.sh", DEMO, checkpoint, "2", "--device", "cpu", "--out",
                str(root / "results_2.json"), "--cfg-options", *OPTIONS, env=env)
    os.environ["DETBOX_CACHE"] = env["DETBOX_CACHE"]
    try:
        assert main(["test", DEMO, checkpoint, "--device", "cpu", "--launcher", "none", "--out",
                     str(root / "results_1.json"), "--cfg-options", *OPTIONS]) == 0
    finally:
        del os.environ["DETBOX_CACHE"]
    return root


def test_one_distributed_step_applies_the_mean_of_the_two_gradients(runs, monkeypatch):
    from detbox.config import ConfigDict, load_config, parse_options
    from detbox.data import build_dataset
    from detbox.data.collate import collate
    from detbox.engine import load_checkpoint
    from detbox.engine.cpu_training import prepare_cpu_training

    monkeypatch.setenv("DETBOX_CACHE", str(runs / "cache"))
    cfg = load_config(DEMO)
    options = parse_options(OPTIONS, context=cfg)
    dataset_cfg = ConfigDict({**cfg.train_dataloader.dataset, "num_images": 2, "image_size": 64,
                              "pipeline": options["train_dataloader.dataset.pipeline"]})
    dataset = build_dataset(dataset_cfg)
    model = _demo_model().train()
    model.load_state_dict(torch.load(runs / "init.pth")["state_dict"])
    prepare_cpu_training(model, torch.device("cpu"))  # the kernels the trainer used
    gradients = []
    for index in range(2):
        model.zero_grad()
        sum(model.loss(collate([dataset[index]])).values()).backward()
        gradients.append({n: p.grad.clone() for n, p in model.named_parameters()})

    trained = load_checkpoint(runs / "work" / "latest.pth")["state_dict"]
    for name, param in model.named_parameters():
        mean = (gradients[0][name] + gradients[1][name]) / 2
        expected = param.detach() - LR * mean
        assert torch.allclose(trained[name], expected, atol=1e-5, rtol=0)
    assert any(not torch.equal(gradients[0][n], gradients[1][n]) for n in gradients[0])


def test_only_rank0_writes_logs_and_checkpoints(runs):
    work = runs / "work"
    assert sorted(p.name for p in work.glob("*.pth")) == ["epoch_1.pth", "latest.pth"]
    (log,) = work.glob("*.log")
    text = log.read_text()
    assert "total batch 2 = 1 per process x 2 process(es) x 1 accumulation step(s)" in text
    assert "world size 2" in text
    output = (runs / "train_output.txt").read_text()
    assert output.count("training finished") == 1
    assert "master 127.0.0.1:" in output


def test_distributed_test_equals_single_process(runs):
    one = json.loads((runs / "results_1.json").read_text())
    two = json.loads((runs / "results_2.json").read_text())
    per_image = Counter(r["image_id"] for r in one)
    assert sorted(per_image) == [1, 2, 3, 4, 5]  # every image of the odd-sized split
    assert Counter(r["image_id"] for r in two) == per_image  # none missing, none twice
    key = lambda r: (r["image_id"], -r["score"], r["category_id"])  # noqa: E731
    for a, b in zip(sorted(one, key=key), sorted(two, key=key)):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-2)
