"""``detbox infer`` and ``detbox benchmark`` on a folder with broken files, and on a video with
a damaged frame: everything readable is predicted, the rest is listed, exit codes follow
``--strict``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detbox.cli.main import main
from tests.conftest import REPO_ROOT
from tests.robustness.image_zoo import AWKWARD, BROKEN, write_broken, write_zoo
from tests.tiny_detector import write_tiny

# The summary line: broken files in the order ``detbox infer`` lists them (sorted paths).
SUMMARY = (f"{len(BROKEN)} of {len(AWKWARD) + len(BROKEN)} files could not be read: "
           "empty.jpg (empty file), huge.png (too large), text.jpg (not an image), "
           "truncated.jpg (truncated), truncated.png (truncated)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> list[str]:
    return [str(p) for p in write_tiny(tmp_path_factory.mktemp("tiny"))]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return write_zoo(tmp_path_factory.mktemp("photos"))


def _stderr_lines(text: str) -> list[str]:
    """stderr without the progress bar."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("infer:")]


def test_a_folder_with_broken_files_is_predicted_and_summarized(tiny, zoo, tmp_path, capsys):
    out, vis = tmp_path / "preds.json", tmp_path / "vis"
    assert main(["infer", *tiny, str(zoo), "--out", str(out), "--vis-dir", str(vis),
                 "--score-thr", "0.2"]) == 0
    captured = capsys.readouterr()
    preds = json.loads(out.read_text())
    assert sorted(Path(p).name for p in preds) == sorted(AWKWARD)
    for path, record in preds.items():
        assert (record["height"], record["width"]) == AWKWARD[Path(path).name]
        assert record["predictions"], f"no detections in {path}"
    assert len(list(vis.glob("*.png"))) == len(AWKWARD)
    assert f"in {len(AWKWARD)} images" in captured.out
    assert captured.err.strip().splitlines()[-1] == SUMMARY
    assert "Traceback" not in captured.err and "annotation file" not in captured.err


def test_strict_fails_after_writing_everything(tiny, zoo, tmp_path, capsys):
    out = tmp_path / "preds.json"
    assert main(["infer", *tiny, str(zoo / "*"), "--out", str(out), "--strict"]) == 1
    assert len(json.loads(out.read_text())) == len(AWKWARD)
    assert capsys.readouterr().err.strip().splitlines()[-1] == SUMMARY


def test_nothing_readable_is_an_error(tiny, tmp_path, capsys):
    write_broken(tmp_path / "bad")
    out = tmp_path / "preds.json"
    assert main(["infer", *tiny, str(tmp_path / "bad"), "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"detbox infer: error: none of the {len(BROKEN)} files could be "
                           "read: empty.jpg (empty file), huge.png (too large)")
    assert not out.exists()


def test_a_single_broken_image_is_one_line_with_exit_2(tiny, tmp_path, capsys):
    write_broken(tmp_path)
    assert main(["infer", *tiny, str(tmp_path / "truncated.jpg")]) == 2
    err = capsys.readouterr().err
    assert _stderr_lines(err)[-1] == (f"detbox infer: error: {tmp_path / 'truncated.jpg'}: cannot "
                                      "read image (truncated: image file is truncated (143 "
                                      "bytes not processed)); replace or remove the file")


def test_the_command_prints_no_traceback(tiny, zoo, tmp_path):
    out = tmp_path / "preds.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "detbox.cli.main", "infer", *tiny, str(zoo),
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = _stderr_lines(done.stderr)
    assert lines[-1] == SUMMARY
    skipped = sorted(line for line in lines if line.startswith("skipped "))
    assert len(skipped) == len(BROKEN)
    assert all("cannot read image (" in line for line in skipped)
    assert len(json.loads(out.read_text())) == len(AWKWARD)


def test_benchmark_reads_only_the_readable_images(tiny, zoo, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["benchmark", *tiny, "--images", str(zoo), "--num-images", "2", "--warmup",
                 "0", "--json-out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"on {len(AWKWARD)} images from" in captured.out
    assert captured.err.strip().splitlines()[-1] == SUMMARY
    assert json.loads(out.read_text())["num_images"] == 2
    assert main(["benchmark", *tiny, "--images", str(zoo / "empty.jpg"), "--num-images",
                 "1"]) == 2


def _video_with_a_damaged_frame(path: Path, frames: int = 6, damaged: int = 3) -> None:
    """An MPEG-4 clip whose frame ``damaged`` has its coded bytes overwritten with noise."""
    av = pytest.importorskip("av")
    from detbox.apis.video import VideoWriter

    rng = np.random.default_rng(0)
    with VideoWriter(path, fps=10, codec="mpeg4") as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0])
                   if p.size]
    data = bytearray(path.read_bytes())
    start, size = packets[damaged]
    data[start:start + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_a_video_with_a_damaged_frame_goes_on(tiny, tmp_path, capsys):
    video, out = tmp_path / "clip.mp4", tmp_path / "preds.json"
    _video_with_a_damaged_frame(video)
    assert main(["infer", *tiny, str(video), "--out", str(out)]) == 0
    frames = [record["frame"] for record in json.loads(out.read_text()).values()]
    assert frames == [0, 1, 2, 4, 5]
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary == "1 of 6 frames could not be read: clip.mp4#3 (corrupt frame)"
    assert main(["infer", *tiny, str(video), "--strict"]) == 1
