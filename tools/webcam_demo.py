"""Live detection on a webcam (or any video source OpenCV can open).

    python tools/webcam_demo.py CONFIG CHECKPOINT [--camera 0] [--score-thr 0.5] [--device cuda]

Frames go through the same code as ``detbox infer`` on a video (``detect_frames`` and
``draw_frame`` in ``detbox.apis.video``); only capturing and showing frames is specific to
this script, and needs ``opencv-python`` (``pip install opencv-python``). Press q or Esc to quit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", help="checkpoint file (.pth or .safetensors)")
    parser.add_argument("--camera", default="0",
                        help="camera index, or a video file / stream URL (default: 0)")
    parser.add_argument("--score-thr", type=float, default=0.5)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: auto)")
    return parser.parse_args(argv)


def camera_frames(cv2, source: str) -> Iterator[np.ndarray]:
    """RGB frames from the camera until it stops delivering them."""
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise SystemExit(f"cannot open camera or stream {source}")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield bgr[:, :, ::-1].copy()
    finally:
        capture.release()


def main(argv: list[str] | None = None) -> int:
    try:
        import cv2
    except ImportError:
        print("the webcam demo needs OpenCV: pip install opencv-python", file=sys.stderr)
        return 2
    from detbox.apis.inference import init_detector
    from detbox.apis.video import detect_frames, draw_frame

    args = parse_args(argv)
    model = init_detector(args.config, args.checkpoint, device=args.device)
    names = model.dataset_meta["class_names"]
    for frame, instances in detect_frames(model, camera_frames(cv2, args.camera), batch_size=1):
        shown = draw_frame(frame, instances, names, args.score_thr)
        cv2.imshow("detbox", shown[:, :, ::-1])
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            break
    cv2.destroyAllWindows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
