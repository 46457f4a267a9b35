"""benchmarks/bench_gpu.py runs end to end (on the CPU, tiny sizes), so that the rare GPU
machine finds a working script; its figures are recorded in benchmarks/RESULTS.md, not here."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _bench_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_side_trains_and_predicts_and_is_recorded(tmp_path):
    out = tmp_path / "rows.json"
    status = _bench_gpu().main([
        "--device", "cpu", "--models", "retinanet_resnet50_fpn", "--train-size", "96", "128",
        "--size", "96", "--repeats", "1", "--warmup", "0", "--no-amp", "--json", str(out)])
    assert status == 0
    rows = json.loads(out.read_text())["rows"]
    sides = {(row["section"], row["side"]) for row in rows}
    assert sides == {("train", "torchvision"), ("train", "detbox"),
                     ("train", "detbox channels-last"), ("inference", "torchvision"),
                     ("inference", "detbox plain"), ("inference", "detbox fast")}
    for row in rows:
        assert row["seconds"] > 0 and math.isfinite(row["speedup_vs_torchvision"])
        assert row["peak_mib"] is None  # CUDA memory only
        assert row["precision"] == "fp32"


def test_asking_for_a_missing_gpu_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert _bench_gpu().main(["--device", "cuda"]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
