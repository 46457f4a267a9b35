"""Training-log analysis on a hand-written JSON-lines log."""

import json

import numpy as np
import pytest

from detbox.analysis.log_analysis import collect_curves, load_log, plot_curves, train_time_stats
from detbox.errors import DetboxError

# Two epochs of 3 logged steps each (iters_per_epoch 30, log interval 10), one val per epoch.
RECORDS = [
    {"mode": "train", "epoch": 1, "iter": 10, "step": 10, "time": 0.9, "data_time": 0.3,
     "loss": 2.0, "loss_cls": 1.2},
    {"mode": "train", "epoch": 1, "iter": 20, "step": 20, "time": 0.2, "data_time": 0.1,
     "loss": 1.5, "loss_cls": 1.0},
    {"mode": "train", "epoch": 1, "iter": 30, "step": 30, "time": 0.4, "data_time": 0.1,
     "loss": 1.2, "loss_cls": 0.8},
    {"mode": "val", "epoch": 1, "bbox_mAP": 0.10, "bbox_mAP_50": 0.2},
    {"mode": "train", "epoch": 2, "iter": 10, "step": 40, "time": 0.5, "data_time": 0.2,
     "loss": 1.0, "loss_cls": None},
    {"mode": "train", "epoch": 2, "iter": 20, "step": 50, "time": 0.6, "data_time": 0.1,
     "loss": 0.9, "loss_cls": 0.5},
    {"mode": "train", "epoch": 2, "iter": 30, "step": 60, "time": 0.8, "data_time": 0.1,
     "loss": 0.8, "loss_cls": 0.4},
    {"mode": "val", "epoch": 2, "bbox_mAP": 0.25, "bbox_mAP_50": 0.4},
]


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "run.log.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return path


def test_train_time_drops_each_epochs_first_record_by_default(log_file):
    stats = train_time_stats(load_log(log_file))
    assert stats.epoch_means == pytest.approx({1: 0.3, 2: 0.7})
    assert (stats.slowest_epoch, stats.fastest_epoch) == (2, 1)
    assert stats.std == pytest.approx(0.2)  # population std of (0.3, 0.7)
    assert stats.mean == pytest.approx(np.mean([0.2, 0.4, 0.6, 0.8]))
    assert stats.data_mean == pytest.approx(0.1)
    assert stats.num_records == 4


def test_train_time_with_outliers(log_file):
    stats = train_time_stats(load_log(log_file), include_outliers=True)
    assert stats.epoch_means == pytest.approx({1: 0.5, 2: 19 / 30})
    assert stats.mean == pytest.approx(3.4 / 6)
    assert stats.num_records == 6


def test_curves_read_the_right_series(log_file, tmp_path):
    other = tmp_path / "other.log.jsonl"
    other.write_text(json.dumps({"mode": "val", "epoch": 1, "bbox_mAP": 0.5, "loss_cls": 3.0})
                     + "\n" + json.dumps({"mode": "train", "epoch": 1, "iter": 5,
                                          "loss_cls": 2.0}) + "\n")
    curves = collect_curves([log_file, other], ["loss_cls", "bbox_mAP"], legend=["a", "b"])
    first = curves["loss_cls"][0]
    assert first.label == "a" and first.x_label == "iteration"
    assert first.x == [10, 20, 30, 40, 50, 60]
    assert first.y[:3] == [1.2, 1.0, 0.8]
    assert np.isnan(first.y[3]) and first.y[4:] == [0.5, 0.4]  # null becomes a gap
    mAP = curves["bbox_mAP"][0]
    assert mAP.x_label == "epoch" and mAP.x == [1.0, 2.0] and mAP.y == [0.10, 0.25]
    # Training records win over evaluation ones for a key in both; no "step": epoch/iter.
    assert curves["loss_cls"][1].x == [5.0] and curves["loss_cls"][1].y == [2.0]
    out = plot_curves(curves, tmp_path / "fig.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_key_and_legend_errors(log_file):
    with pytest.raises(DetboxError, match="did you mean 'bbox_mAP'"):
        collect_curves([log_file], ["bbox_map"])
    with pytest.raises(DetboxError, match="one label per log"):
        collect_curves([log_file], ["loss"], legend=["a", "b"])


def test_a_cut_last_line_is_skipped_but_damage_elsewhere_is_an_error(log_file, tmp_path):
    text = log_file.read_text()
    log_file.write_text(text + '{"mode": "train", "ep')
    assert len(load_log(log_file)) == len(RECORDS)
    broken = tmp_path / "broken.log.jsonl"
    broken.write_text("{oops\n" + text)
    with pytest.raises(DetboxError, match="broken.log.jsonl:1"):
        load_log(broken)


def test_evaluations_of_iteration_based_training_are_plotted_per_iteration(tmp_path):
    path = tmp_path / "iters.log.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"mode": "train", "epoch": 1, "iter": 5, "step": 5, "loss": 1.0},
        {"mode": "val", "epoch": 1, "step": 5, "bbox_mAP": 0.1},
        {"mode": "train", "epoch": 2, "iter": 2, "step": 10, "loss": 0.8},
        {"mode": "val", "epoch": 2, "step": 10, "bbox_mAP": 0.3},
    ]) + "\n")
    mAP = collect_curves([path], ["bbox_mAP"])["bbox_mAP"][0]
    assert (mAP.x_label, mAP.x, mAP.y) == ("iteration", [5.0, 10.0], [0.1, 0.3])
