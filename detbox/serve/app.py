"""The HTTP service around a loaded detector: ``create_app(model, ...)`` -> a FastAPI app.

Endpoints: ``POST /predict`` (multipart, form field ``file`` repeated; ``score_thr`` query),
``GET /health``, ``GET /model``, ``GET /`` (a page to try the model in a browser) and the
OpenAPI docs at ``/docs``. Each image of ``/predict`` is answered with the record
``detbox infer`` writes to ``preds.json``, with the client's file name added. Every mistake
of a client is a 4xx JSON ``{"error": kind, "detail": message}``; the service never fetches
anything a client names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from torch import nn

from detbox.apis.inference import iter_predictions
from detbox.evaluation.prediction_records import prediction_record
from detbox.serve.batching import DynamicBatcher
from detbox.serve.uploads import UploadError, decode_upload
from detbox.structures import Instances

__all__ = ["create_app", "model_card"]

MB = 1024 * 1024


def _error(status: int, kind: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_card(model: nn.Module, checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """What ``GET /model`` reports: architecture, classes, test input size, checkpoint hash."""
    cfg = getattr(model, "cfg", None) or {}
    section = cfg.get("test_dataloader") or cfg.get("val_dataloader") or {}
    steps = cfg.get("test_pipeline") or (section.get("dataset") or {}).get("pipeline") or []
    sizes = [list(step["scale"]) for step in steps if "scale" in step]
    meta = model.dataset_meta
    return {
        "architecture": type(model).__name__,
        "config": str(cfg.get("_filename", "")) or None,
        "class_names": list(meta["class_names"]),
        "cat_ids": list(meta["cat_ids"]),
        "input_size": sizes[0] if sizes else None,
        "masks": any(name.split(".")[-1].startswith("mask_head")
                     for name, _ in model.named_modules()),
        "checkpoint": None if checkpoint is None else {
            "file": Path(checkpoint).name, "sha256": file_sha256(checkpoint)},
        "device": str(next(model.parameters()).device),
    }


def _predict_batch(model: nn.Module):
    """(H, W, 3) RGB arrays -> their ``Instances`` (CPU, original image coordinates)."""
    def run(images: Sequence[np.ndarray]) -> list[Instances]:
        return [p.instances for p in iter_predictions(model, list(images), len(images))]
    return run


def create_app(
    model: nn.Module,
    *,
    checkpoint: str | os.PathLike | None = None,
    score_thr: float = 0.3,
    max_batch: int = 8,
    max_wait_ms: float = 5.0,
    max_image_bytes: int = 20 * MB,
    max_pixels: int = 40_000_000,
    max_files: int = 16,
) -> FastAPI:
    """The service for ``model`` (loaded with ``init_detector``: it needs ``model.cfg``).

    Args:
        checkpoint: the weights file, hashed for ``GET /model``.
        score_thr: ``/predict``'s default ``score_thr``.
        max_batch: the most images in one model call (images of concurrent requests are
            batched together, see ``DynamicBatcher``).
        max_wait_ms: how long an image waits for others to fill its batch.
        max_image_bytes: larger uploads are refused (413).
        max_pixels: images declaring more pixels in their header are refused unread (413).
        max_files: the most images in one request.
    """
    batcher = DynamicBatcher(_predict_batch(model), max_batch=max_batch, max_wait_ms=max_wait_ms)
    card = model_card(model, checkpoint)
    card.update(max_batch=max_batch, max_image_bytes=max_image_bytes, max_pixels=max_pixels,
                max_files=max_files, default_score_thr=score_thr)
    names, cat_ids = card["class_names"], card["cat_ids"]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title="detbox", lifespan=lifespan,
                  description=f"{card['architecture']} detecting {', '.join(names)}")
    app.state.batcher = batcher
    _add_error_handlers(app, max_files * max_image_bytes + MB)
    _add_info_routes(app, card, batcher)

    @app.post("/predict")
    async def predict(
        file: Annotated[list[UploadFile], File(description="image file(s); repeat the field "
                                               "for several images")],
        score_thr: Annotated[float | None, Query(ge=0.0, le=1.0, description="drop detections "
                             "scoring below this (default: the server's --score-thr)")] = None,
    ) -> Any:
        if len(file) > max_files:
            return _error(413, "too_many_files", f"{len(file)} files in one request; this "
                          f"server takes at most {max_files}")
        threshold = card["default_score_thr"] if score_thr is None else score_thr
        try:
            images = [await _read(upload, max_image_bytes, max_pixels) for upload in file]
        except UploadError as exc:
            return _error(exc.status, exc.code, exc.message)
        results = await asyncio.gather(*(batcher.submit(image) for image in images))
        records = []
        for upload, image, instances in zip(file, images, results):
            kept = instances[instances.scores >= threshold]
            record = prediction_record(kept, image.shape[0], image.shape[1], names, cat_ids)
            records.append({"file_name": upload.filename or "", **record})
        return {"score_thr": threshold, "images": records}

    return app


def _add_info_routes(app: FastAPI, card: dict[str, Any], batcher: DynamicBatcher) -> None:
    """``GET /`` (the page), ``/health`` (model calls so far) and ``/model`` (``card``)."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("detbox.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_calls": batcher.calls}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        return card


async def _read(upload: UploadFile, max_bytes: int, max_pixels: int) -> np.ndarray:
    """An upload's pixels: at most ``max_bytes + 1`` bytes are read, decoding off the loop."""
    name = upload.filename or "(unnamed file)"
    data = await upload.read(max_bytes + 1)
    return await run_in_threadpool(decode_upload, data, name, max_bytes=max_bytes,
                                   max_pixels=max_pixels)


def _add_error_handlers(app: FastAPI, max_body: int) -> None:
    """Client mistakes as ``{"error", "detail"}`` JSON; oversized bodies refused unread."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems, in_body = [], False
        for error in exc.errors():
            location = tuple(error.get("loc", ()))
            in_body = in_body or location[:1] == ("body",)
            where = ".".join(str(part) for part in location if part != "body")
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        hint = "; send the image(s) as multipart/form-data, field 'file'" if in_body else ""
        return _error(422, "invalid_request", "; ".join(problems) + hint)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            return _error(413, "too_many_bytes", f"request body of {length} bytes is more than "
                          f"the {max_body} this server accepts")
        return await call_next(request)
