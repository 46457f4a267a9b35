"""Benchmark bookkeeping and the environment report."""

import numpy as np
import pytest
import torch

from detbox.analysis.env_report import collect_env, format_env
from detbox.deploy.benchmark import (
    BenchmarkResult,
    benchmark_detector,
    format_benchmark,
    synthetic_images,
)
from tests.tiny_detector import build_tiny, tiny_config


def test_benchmark_measures_the_requested_images_after_warmup(monkeypatch):
    model = build_tiny(tiny_config())
    calls = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda batch: calls.append(len(batch)) or predict(batch))
    images = synthetic_images(3, (48, 64))
    result = benchmark_detector(model, images, num_images=5, batch_size=2, warmup=1)
    assert calls == [2, 2, 2, 1]  # one warm-up batch, then 2 + 2 + 1 measured images
    assert result.num_images == 5 and result.num_batches == 3
    assert len(result.data_seconds) == 3 and all(t > 0 for t in result.data_seconds)
    assert result.latency_ms(50) <= result.latency_ms(90) <= result.latency_ms(99)
    assert result.images_per_second < result.model_images_per_second
    assert result.memory_kind == "cpu_peak_rss" and result.peak_memory_bytes > 2**20
    text = format_benchmark(result)
    assert "5 images in 3 batches of up to 2 on cpu" in text and "p99" in text


def test_result_arithmetic():
    result = BenchmarkResult(device="cpu", num_images=4, batch_size=2,
                             data_seconds=[0.5, 0.5], model_seconds=[1.0, 3.0])
    assert result.images_per_second == pytest.approx(4 / 5)
    assert result.model_images_per_second == pytest.approx(1.0)
    assert result.latency_ms(50) == pytest.approx(2000.0)
    assert result.to_dict()["num_batches"] == 2


def test_synthetic_images_are_reproducible_and_not_flat():
    first, again = synthetic_images(2, (20, 30), seed=3), synthetic_images(2, (20, 30), seed=3)
    assert first[0].shape == (20, 30, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again)) and first[0].std() > 10


def test_env_report_names_versions_and_backends():
    env = collect_env()
    assert env["PyTorch"]["torch"] == torch.__version__
    assert env["PyTorch"]["torch threads (intra-op)"] == torch.get_num_threads()
    assert env["CUDA"]["CUDA available"] == torch.cuda.is_available()
    assert env["backends"]["OpenMP"] == torch.backends.openmp.is_available()
    assert env["packages"]["numpy"] == np.__version__
    text = format_env(env)
    assert "[backends]" in text and "ATen parallel backend" in text and "\t" not in text
    assert "build configuration" not in text and "[build configuration]" in format_env(env, True)
