"""Video in and out, and detection over frames (the path shared with the webcam demo)."""

import importlib.util
import sys
import types

import numpy as np
import pytest

from detbox.apis.video import VideoWriter, detect_frames, infer_video, read_frames, video_info
from tests.conftest import REPO_ROOT
from tests.tiny_detector import build_tiny, tiny_config

pytest.importorskip("av")


def _frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def write_video(path, count: int = 5) -> None:
    with VideoWriter(path, fps=10) as writer:
        for frame in _frames(count):
            writer.write(frame)


def test_write_then_read_back(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 5)
    info = video_info(path)
    assert (info.fps, info.height, info.width) == (10, 48, 64)
    frames = list(read_frames(path))
    assert [i for i, _, _ in frames] == [0, 1, 2, 3, 4]
    assert frames[2][1] == pytest.approx(0.2)
    assert frames[0][2].shape == (48, 64, 3) and frames[0][2].dtype == np.uint8


def test_infer_video_records_every_frame_and_writes_the_annotated_video(tmp_path):
    path, out = tmp_path / "clip.mp4", tmp_path / "vis" / "clip.mp4"
    write_video(path, 5)
    model = build_tiny(tiny_config())
    records = infer_video(model, path, score_thr=0.2, out_video=out, batch_size=2)
    assert list(records) == [f"{path}#{i}" for i in range(5)]
    first = records[f"{path}#0"]
    assert first["frame"] == 0 and (first["height"], first["width"]) == (48, 64)
    assert first["predictions"] and all(p["score"] >= 0.2 for p in first["predictions"])
    assert len(list(read_frames(out))) == 5


def test_detect_frames_is_lazy_and_batched():
    model = build_tiny(tiny_config())
    consumed = []

    def frames():
        for index, frame in enumerate(_frames(3)):
            consumed.append(index)
            yield frame

    stream = detect_frames(model, frames(), batch_size=2)
    frame, instances = next(stream)
    assert consumed == [0, 1] and frame.shape == (48, 64, 3) and len(instances) > 0
    assert len(list(stream)) == 2 and consumed == [0, 1, 2]


def test_webcam_demo_runs_on_a_fake_camera(tmp_path, monkeypatch):
    from tests.tiny_detector import write_tiny

    config, checkpoint = write_tiny(tmp_path)
    frames = _frames(3)
    shown = []

    class Capture:
        def __init__(self, source):
            self.source, self.left = source, list(frames)

        def isOpened(self):  # noqa: N802 (OpenCV's name)
            return True

        def read(self):
            return (True, self.left.pop(0)[:, :, ::-1]) if self.left else (False, None)

        def release(self):
            pass

    fake_cv2 = types.SimpleNamespace(
        VideoCapture=Capture, imshow=lambda name, image: shown.append(image.shape),
        waitKey=lambda delay: -1, destroyAllWindows=lambda: None)
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2)
    spec = importlib.util.spec_from_file_location("webcam_demo", REPO_ROOT / "tools/webcam_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main([str(config), str(checkpoint), "--device", "cpu"]) == 0
    assert shown == [(48, 64, 3)] * 3
