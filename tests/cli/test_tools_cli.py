"""The tool subcommands end to end on tiny models: values checked, not just files."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detbox.cli.main import main
from detbox.deploy.publish import file_sha256
from tests.tiny_detector import two_stage_model, write_tiny


@pytest.fixture(scope="module")
def retina(tmp_path_factory):
    return [str(p) for p in write_tiny(tmp_path_factory.mktemp("retina"))]


def test_analyze_logs(tmp_path, capsys):
    log = tmp_path / "run.log.jsonl"
    records = [{"mode": "train", "epoch": e, "iter": i, "step": 3 * (e - 1) + i, "time": t,
                "data_time": 0.0, "loss": 1.0 / (3 * (e - 1) + i)}
               for e, times in ((1, (5.0, 1.0, 2.0)), (2, (5.0, 3.0, 4.0)))
               for i, t in enumerate(times, start=1)]
    records.append({"mode": "val", "epoch": 2, "bbox_mAP": 0.5})
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["analyze-logs", "cal-train-time", str(log)]) == 0
    out = capsys.readouterr().out
    assert "slowest epoch 2: 3.5000 s/iter" in out and "fastest epoch 1: 1.5000 s/iter" in out
    assert "std over epochs: 1.0000" in out and "mean iter time: 2.5000" in out
    figure = tmp_path / "curves.png"
    assert main(["analyze-logs", "plot-curve", str(log), "--keys", "loss", "bbox_mAP",
                 "--legend", "run", "--out", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "run: loss: 6 points over iterations" in out and "bbox_mAP: 1 points over epochs" in out
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert main(["analyze-logs", "plot-curve", str(log), "--keys", "los",
                 "--out", str(figure)]) == 2
    assert "did you mean 'loss'" in capsys.readouterr().err


def test_flops(retina, tmp_path, capsys):
    report_file = tmp_path / "flops.json"
    assert main(["flops", retina[0], "--checkpoint", retina[1], "--shape", "64",
                 "--json-out", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    modules = {m["name"]: m for m in report["modules"]}
    assert report["input_shape"] == [1, 3, 64, 64]
    parts = ("backbone", "neck", "bbox_head")
    assert sum(modules[p]["flops"] for p in parts) == report["total_flops"] > 0
    assert sum(modules[p]["params"] for p in parts) == report["total_params"]
    # The head's class-logit conv: 2 x (6 anchors x 3 classes) x 16 x 3 x 3 per output cell,
    # over 8x8 + 4x4 + 2x2 + 1x1 cells of the four levels.
    cls = modules["bbox_head.cls_logits"]["flops"]
    assert cls == 2 * 18 * 16 * 9 * (64 + 16 + 4 + 1)
    out = capsys.readouterr().out
    assert "not counted (no FLOP formula):" in out and "aten.native_group_norm" in out


def test_publish(retina, tmp_path, capsys):
    assert main(["publish", retina[1], str(tmp_path / "model.pth")]) == 0
    (published,) = tmp_path.glob("model-*.pth")
    sha = file_sha256(published)
    assert published.name == f"model-{sha[:8]}.pth"
    assert f"sha256 {sha}" in capsys.readouterr().out
    assert main(["publish", retina[1], str(tmp_path / "model"), "--safetensors"]) == 0
    (safetensors,) = tmp_path.glob("model-*.safetensors")
    assert safetensors.name == f"model-{file_sha256(safetensors)[:8]}.safetensors"


def test_export_onnx_faster_rcnn_and_a_failing_check(tmp_path, capsys, monkeypatch):
    config, checkpoint = write_tiny(tmp_path, two_stage_model("FasterRCNN"), name="faster")
    out = tmp_path / "faster.onnx"
    assert main(["export-onnx", str(config), str(checkpoint), str(out), "--shape", "64"]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime matches PyTorch on all 4 images" in printed
    assert "blank 64x64 at score_thr 1.0: input 96x96, 0 detections (PyTorch) vs 0" in printed

    from detbox.deploy.onnx_runtime import OnnxDetector

    predict = OnnxDetector.predict_batch

    def shifted(self, batch, score_thr=None):
        results = predict(self, batch, score_thr)
        for result in results:
            result.boxes += 2.0
        return results

    monkeypatch.setattr(OnnxDetector, "predict_batch", shifted)
    assert main(["export-onnx", str(config), str(checkpoint), str(out), "--shape", "64"]) == 2
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.out
    assert "differ from PyTorch's on 3 of 4 images" in captured.err


def test_benchmark(retina, tmp_path, capsys):
    numbers = tmp_path / "bench.json"
    assert main(["benchmark", retina[0], retina[1], "--shape", "48", "64", "--num-images", "3",
                 "--batch-size", "2", "--warmup", "1", "--json-out", str(numbers)]) == 0
    result = json.loads(numbers.read_text())
    assert (result["num_images"], result["num_batches"], result["batch_size"]) == (3, 2, 2)
    assert result["latency_ms_p50"] <= result["latency_ms_p99"]
    assert result["images_per_second"] > 0 and result["peak_memory_bytes"] > 0
    assert "3 images in 2 batches of up to 2 on cpu" in capsys.readouterr().out


def test_env(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out and "CUDA available" in out
    assert main(["env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["PyTorch"]["torch"] == torch.__version__


def test_infer_glob_coco_format_and_video(retina, tmp_path):
    from tests.apis.test_video import write_video

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "skip.txt"):
        if name.endswith("txt"):
            (folder / name).write_text("not an image")
        else:
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / name)
    out = tmp_path / "coco.json"
    assert main(["infer", *retina, str(folder / "*.*"), "--out", str(out), "--format", "coco",
                 "--score-thr", "0.2"]) == 0
    results = json.loads(out.read_text())
    assert {r["file_name"] for r in results} == {str(folder / "a.png"), str(folder / "b.jpg")}
    assert {r["image_id"] for r in results} == {0, 1}
    assert all(r["score"] >= 0.2 and r["category_id"] in (1, 2, 3) and len(r["bbox"]) == 4
               for r in results)

    video = tmp_path / "clip.mp4"
    write_video(video, 4)
    preds = tmp_path / "video.json"
    assert main(["infer", *retina, str(video), "--out", str(preds), "--vis-dir",
                 str(tmp_path / "vis"), "--score-thr", "0.2"]) == 0
    frames = json.loads(preds.read_text())
    assert [r["frame"] for r in frames.values()] == [0, 1, 2, 3]
    assert (tmp_path / "vis" / "clip.mp4").stat().st_size > 0


def test_test_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    config, checkpoint = write_tiny(tmp_path, with_data=True)
    plots = tmp_path / "plots"
    assert main(["test", str(config), str(checkpoint), "--plots", str(plots)]) == 0
    for name in ("pr_curves.png", "confusion_matrix.png"):
        assert (plots / name).read_bytes()[:4] == b"\x89PNG"
    assert "plots written" in capsys.readouterr().out
