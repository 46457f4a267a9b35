"""Detection on video: frames in (PyAV), detections and an annotated video out.

``detbox infer`` on a video file and ``tools/webcam_demo.py`` share :func:`detect_frames`:
frames are RGB (H, W, 3) uint8 arrays, detected in batches with ``inference_detector`` and
drawn with the same visualizer as still images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from torch import nn

from detbox.data.skipping import UnreadableFiles
from detbox.errors import DetboxError
from detbox.structures import Instances

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "VideoWriter",
    "detect_frames",
    "draw_frame",
    "infer_video",
    "read_frames",
    "video_info",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _av():
    try:
        import av
    except ImportError as exc:
        raise DetboxError("video input needs PyAV: pip install 'detbox[tools]'") from exc
    return av


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate (frames per second), frame count (0 when the container does not say) and
    frame size."""

    fps: Fraction
    num_frames: int
    height: int
    width: int


def _open(path: str | os.PathLike):
    av = _av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DetboxError(f"cannot open video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise DetboxError(f"{path} has no video stream")
    return container


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size of the first video stream of ``path``."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(fps=Fraction(fps), num_frames=int(stream.frames or 0),
                         height=int(stream.codec_context.height),
                         width=int(stream.codec_context.width))
    finally:
        container.close()


def read_frames(
    path: str | os.PathLike, on_bad_packet: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, time in seconds, (H, W, 3) uint8 RGB frame)`` for every frame, decoded as
    they are read (the video is never held in memory whole).

    A packet the decoder rejects (a damaged frame) is skipped: ``on_bad_packet(index, reason)``
    is told the frame index it would have had, and that index is left unused.
    """
    av = _av()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        index = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                if on_bad_packet is not None:
                    on_bad_packet(index, f"corrupt frame: {exc}")
                index += 1
                continue
            for frame in frames:
                seconds = float(frame.time) if frame.time is not None else float("nan")
                yield index, seconds, frame.to_ndarray(format="rgb24")
                index += 1
    finally:
        container.close()


class VideoWriter:
    """Encode RGB frames to a video file (H.264 when available, else MPEG-4 part 2).

    Args:
        path: output file; its suffix picks the container (``.mp4`` recommended).
        fps: frame rate.
        codec: FFmpeg encoder name; chosen automatically when None.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | float,
                 codec: str | None = None) -> None:
        self.av = _av()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec = codec or ("libx264" if "libx264" in self.av.codecs_available else "mpeg4")
        self._container = self.av.open(str(path), mode="w")
        self._stream = None
        self.frames_written = 0

    def _start(self, height: int, width: int) -> None:
        self._stream = self._container.add_stream(self.codec, rate=self.fps)
        # Most encoders need even sizes for yuv420p.
        self._stream.width, self._stream.height = width - width % 2, height - height % 2
        self._stream.pix_fmt = "yuv420p"

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame must have the first one's size."""
        if self._stream is None:
            self._start(frame.shape[0], frame.shape[1])
        frame = np.ascontiguousarray(frame[: self._stream.height, : self._stream.width])
        video_frame = self.av.VideoFrame.from_ndarray(frame, format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def draw_frame(frame: np.ndarray, instances: Instances, class_names: list[str],
               score_thr: float) -> np.ndarray:
    """``frame`` with ``instances`` drawn, as an RGB array (the still-image visualizer)."""
    from detbox.visualization import draw_instances

    return np.asarray(draw_instances(frame, instances, class_names, score_thr))


def detect_frames(
    model: nn.Module, frames: Iterable[np.ndarray], batch_size: int = 4
) -> Iterator[tuple[np.ndarray, Instances]]:
    """``(frame, detections)`` for every RGB frame, detected ``batch_size`` frames at a time.

    Frames are consumed lazily, so a camera or a long video streams through.
    """
    from detbox.apis.inference import inference_detector

    pending: list[np.ndarray] = []
    for frame in frames:
        pending.append(frame)
        if len(pending) == batch_size:
            yield from zip(pending, inference_detector(model, pending, batch_size))
            pending = []
    if pending:
        yield from zip(pending, inference_detector(model, pending, batch_size))


def infer_video(
    model: nn.Module,
    path: str | os.PathLike,
    score_thr: float = 0.3,
    out_video: str | os.PathLike | None = None,
    batch_size: int = 4,
    unreadable: UnreadableFiles | None = None,
) -> dict[str, dict]:
    """Detect objects in every frame of a video; optionally write the annotated video.

    A frame that cannot be decoded is skipped (and added to ``unreadable`` as
    ``<path>#<frame index>``); the frames after it are still detected.

    Returns:
        ``{"<path>#<frame index>": record}`` with the ``detbox infer`` record of each frame
        plus its ``frame`` index and ``time`` in seconds.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from detbox.evaluation.prediction_records import prediction_record

    info = video_info(path)
    names, cat_ids = model.dataset_meta["class_names"], model.dataset_meta["cat_ids"]
    writer = VideoWriter(out_video, info.fps) if out_video is not None else None
    unreadable = UnreadableFiles("frames") if unreadable is None else unreadable
    stamps: list[tuple[int, float]] = []

    def frames() -> Iterator[np.ndarray]:
        def bad(index: int, reason: str) -> None:
            unreadable.add(f"{path}#{index}", "corrupt frame", f"{path}#{index}: {reason}")

        for index, seconds, frame in read_frames(path, bad):
            stamps.append((index, seconds))
            yield frame

    records: dict[str, dict] = {}
    progress = tqdm(total=info.num_frames or None, desc="infer", unit="frame")
    try:
        with logging_redirect_tqdm():  # a skipped frame's warning on its own line
            for count, (frame, instances) in enumerate(detect_frames(model, frames(), batch_size)):
                instances = instances[instances.scores >= score_thr]
                height, width = frame.shape[:2]
                record = prediction_record(instances, height, width, names, cat_ids)
                index, seconds = stamps[count]
                time = seconds if math.isfinite(seconds) else None
                records[f"{path}#{index}"] = {"frame": index, "time": time, **record}
                if writer is not None:
                    writer.write(draw_frame(frame, instances, names, score_thr))
                progress.update(1)
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    return records
