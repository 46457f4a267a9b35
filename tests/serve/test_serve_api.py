"""``detbox serve``'s HTTP API through FastAPI's test client (no socket)."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='the serve extra: pip install -e ".[serve]"')
from fastapi.testclient import TestClient  # noqa: E402

from detbox.apis.inference import init_detector  # noqa: E402
from detbox.cli.main import main  # noqa: E402
from detbox.serve.app import create_app  # noqa: E402
from tests.serve._serve_helpers import image_bytes, png_claiming  # noqa: E402
from tests.tiny_detector import two_stage_model, write_tiny  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    config, checkpoint = write_tiny(folder)
    return {"config": config, "checkpoint": checkpoint, "folder": folder,
            "model": init_detector(config, checkpoint, device="cpu")}


@pytest.fixture(scope="module")
def client(tiny):
    app = create_app(tiny["model"], checkpoint=tiny["checkpoint"], max_wait_ms=100,
                     max_image_bytes=200_000, max_pixels=1_000_000, max_files=4)
    with TestClient(app) as client:
        yield client


def _files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in items]


def _infer_records(config: Path, checkpoint: Path, source: Path, out: Path) -> dict:
    assert main(["infer", str(config), str(checkpoint), str(source), "--out", str(out),
                 "--device", "cpu"]) == 0
    return json.loads(out.read_text())


def _without_name(image: dict) -> dict:
    return {k: v for k, v in image.items() if k != "file_name"}


def test_predict_gives_the_records_of_detbox_infer(tiny, client, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(70, 90, seed=3, fmt="JPEG"))
    expected = _infer_records(tiny["config"], tiny["checkpoint"], path, tmp_path / "preds.json")
    response = client.post("/predict", files=_files(("photo.jpg", path.read_bytes())))
    assert response.status_code == 200
    body = response.json()
    assert body["score_thr"] == 0.3 and body["images"][0]["file_name"] == "photo.jpg"
    assert _without_name(body["images"][0]) == expected[str(path)]
    assert len(expected[str(path)]["predictions"]) > 0


def test_masks_come_as_the_rles_of_detbox_infer(tmp_path):
    config, checkpoint = write_tiny(tmp_path, two_stage_model("MaskRCNN"), name="mask")
    path = tmp_path / "shapes.png"
    path.write_bytes(image_bytes(64, 64, seed=4))
    expected = _infer_records(config, checkpoint, path, tmp_path / "preds.json")[str(path)]
    app = create_app(init_detector(config, checkpoint, device="cpu"), score_thr=0.05)
    with TestClient(app) as client:
        assert client.get("/model").json()["masks"] is True
        image = client.post("/predict?score_thr=0.3",
                            files=_files(("shapes.png", path.read_bytes()))).json()["images"][0]
    assert _without_name(image) == expected
    assert expected["predictions"] and all("counts" in p["mask"] for p in expected["predictions"])


def test_several_images_per_request_in_their_order(tiny, client, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, (height, width) in enumerate([(60, 80), (90, 50), (64, 64)]):
        (folder / f"{i}.png").write_bytes(image_bytes(height, width, seed=10 + i))
    expected = _infer_records(tiny["config"], tiny["checkpoint"], folder, tmp_path / "p.json")
    paths = sorted(folder.iterdir())
    response = client.post("/predict", files=_files(*((p.name, p.read_bytes()) for p in paths)))
    images = response.json()["images"]
    assert [image["file_name"] for image in images] == ["0.png", "1.png", "2.png"]
    assert [_without_name(image) for image in images] == [expected[str(p)] for p in paths]


def test_score_thr_query_filters(client):
    data = image_bytes(seed=5)
    low = client.post("/predict?score_thr=0.05", files=_files(("a.png", data))).json()
    high = client.post("/predict?score_thr=0.6", files=_files(("a.png", data))).json()
    low_scores = [p["score"] for p in low["images"][0]["predictions"]]
    high_scores = [p["score"] for p in high["images"][0]["predictions"]]
    assert high_scores == [s for s in low_scores if s >= 0.6]
    assert len(low_scores) > len(high_scores)


def test_health_model_and_docs(tiny, client):
    assert client.get("/health").json()["status"] == "ok"
    card = client.get("/model").json()
    assert card["architecture"] == "RetinaNet"
    assert card["class_names"] == ["circle", "square", "triangle"] and card["cat_ids"] == [1, 2, 3]
    assert card["input_size"] == [96, 96] and card["masks"] is False
    digest = hashlib.sha256(Path(tiny["checkpoint"]).read_bytes()).hexdigest()
    assert card["checkpoint"] == {"file": "tiny.pth", "sha256": digest}
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN


@pytest.mark.parametrize("files,status,kind", [
    ([("empty.png", b"")], 400, "empty"),
    ([("notes.png", b"these are not pixels")], 415, "not_an_image"),
    ([("cut.png", image_bytes(120, 120)[:400])], 400, "truncated"),
    ([("big.png", b"\x89PNG" + b"\0" * 200_000)], 413, "too_many_bytes"),
    ([("bomb.png", png_claiming(40_000, 40_000))], 413, "too_many_pixels"),
    ([("lab.tif", image_bytes(8, 8, fmt="TIFF", mode="LAB"))], 415, "unsupported_mode"),
    ([("ok.png", image_bytes()), ("bad.png", b"nope")], 415, "not_an_image"),
    ([(f"{i}.png", image_bytes(8, 8)) for i in range(5)], 413, "too_many_files"),
])
def test_bad_input_is_a_4xx_json_naming_the_problem(client, files, status, kind):
    response = client.post("/predict", files=_files(*files))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == kind
    if kind not in ("too_many_files",):
        assert body["detail"].startswith(files[-1][0] + ": ")
    assert client.get("/health").status_code == 200  # and the server is still there


@pytest.mark.parametrize("request_kwargs", [
    {},  # no file at all
    {"data": {"file": "http://127.0.0.1:9/image.jpg"}},  # a URL is not fetched
    {"json": {"url": "http://127.0.0.1:9/image.jpg"}},
    {"content": b"\xff\xd8 raw bytes", "headers": {"content-type": "image/jpeg"}},
])
def test_requests_without_an_uploaded_file_are_422(client, request_kwargs):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "multipart/form-data" in response.json()["detail"]


def test_out_of_range_score_thr_and_oversized_bodies_are_refused(client):
    response = client.post("/predict?score_thr=1.5", files=_files(("a.png", image_bytes())))
    assert response.status_code == 422 and "score_thr" in response.json()["detail"]
    response = client.post("/predict", content=b"x" * 10,
                           headers={"content-length": str(10**9),
                                    "content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and response.json()["error"] == "too_many_bytes"


def _rows(body: dict) -> list[float]:
    """A response's detections as one flat list: label, score and box of each."""
    return [value for p in body["images"][0]["predictions"]
            for value in (p["class"]["label"], p["score"], *p["bbox"].values())]


def _recording(model, sizes: list[int], delay: float):
    original = model.predict

    def predict(batch):
        sizes.append(len(batch.samples))
        time.sleep(delay)  # a slower model: requests arrive while it works
        return original(batch)
    return predict


@pytest.mark.parametrize("max_batch", [8, 1])
def test_concurrent_requests_share_model_calls(tiny, monkeypatch, max_batch):
    sizes: list[int] = []
    monkeypatch.setattr(tiny["model"], "predict", _recording(tiny["model"], sizes, 0.05))
    app = create_app(tiny["model"], max_batch=max_batch, max_wait_ms=20)
    payloads = [image_bytes(40, 40, seed=i) for i in range(8)]
    with TestClient(app) as client:
        single = [client.post("/predict", files=_files(("a.png", data))).json()
                  for data in payloads]
        sizes.clear()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda data: client.post("/predict", files=_files(("a.png", data))).json(),
                payloads))
    for answer, alone in zip(answers, single):  # batching changes no answer (up to float
        assert _rows(answer) == pytest.approx(_rows(alone), abs=1e-3)  # rounding of kernels)
    assert sum(sizes) == 8 and max(sizes) <= max_batch
    if max_batch == 8:
        assert len(sizes) < 8, sizes
    else:
        assert sizes == [1] * 8


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    from detbox.errors import DetboxError
    from detbox.serve import SERVE_MODULES, require_serve_extra

    monkeypatch.setitem(SERVE_MODULES, "detbox_no_such_module", "fastapi")
    with pytest.raises(DetboxError, match=r'needs fastapi: pip install "detbox\[serve\]"'):
        require_serve_extra()


def test_serve_arguments_are_checked_before_loading(tiny, capsys):
    assert main(["serve", str(tiny["config"]), str(tiny["checkpoint"]),
                 "--score-thr", "3"]) == 2
    assert "--score-thr must be in [0, 1]" in capsys.readouterr().err


def test_a_workers_process_builds_its_app_from_the_environment(tiny, monkeypatch):
    from detbox.cli.main import build_parser
    from detbox.cli.serve import ARGS_ENV, app_from_env

    args = build_parser().parse_args(["serve", str(tiny["config"]), str(tiny["checkpoint"]),
                                      "--device", "cpu", "--workers", "2", "--max-batch", "3"])
    monkeypatch.setenv(ARGS_ENV, json.dumps({k: v for k, v in vars(args).items()
                                             if k != "func"}))
    with TestClient(app_from_env()) as client:
        assert client.get("/model").json()["max_batch"] == 3
        answer = client.post("/predict", files=_files(("a.png", image_bytes())))
        assert answer.status_code == 200 and answer.json()["images"][0]["predictions"]


@pytest.mark.parametrize("requested, workers, environ, expected", [
    (None, 1, {}, None),  # one process: torch's own setting
    (None, 4, {}, 2),  # 8 threads' worth of cores shared by 4 processes
    (None, 16, {}, 1),
    (None, 4, {"OMP_NUM_THREADS": "3"}, None),  # the user chose already
    (3, 4, {"OMP_NUM_THREADS": "1"}, 3),  # --threads wins
])
def test_each_worker_gets_its_share_of_the_cores(requested, workers, environ, expected):
    from detbox.cli.serve import worker_threads

    assert worker_threads(requested, workers, 8, environ) == expected


def test_a_workers_process_sets_its_threads_before_loading(tiny, monkeypatch):
    import torch

    from detbox.cli.main import build_parser
    from detbox.cli.serve import ARGS_ENV, app_from_env

    args = build_parser().parse_args(["serve", str(tiny["config"]), str(tiny["checkpoint"]),
                                      "--device", "cpu", "--workers", "3", "--threads", "2"])
    monkeypatch.setenv(ARGS_ENV, json.dumps({k: v for k, v in vars(args).items()
                                             if k != "func"}))
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    app_from_env()
    assert calls == [2]
    assert main(["serve", str(tiny["config"]), str(tiny["checkpoint"]), "--threads", "0"]) == 2
