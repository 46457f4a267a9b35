"""mPC and rPC on a hand-made result set, and the per-corruption table."""

from __future__ import annotations

import pytest

from detbox.evaluation.robustness import (
    STAT_NAMES,
    format_robustness,
    named_stats,
    robustness_summary,
)


def _stats(ap: float) -> dict:
    return named_stats([ap, ap + 0.2] + [0.0] * 10)


# Clean AP 0.40; fog at severities 1, 2 -> 0.30, 0.20; noise 1, 2 -> 0.10, 0.00.
RESULTS = {
    "clean": {"bbox": _stats(0.40), "segm": _stats(0.20)},
    "corruptions": {
        "fog": {"1": {"bbox": _stats(0.30), "segm": _stats(0.15)},
                "2": {"bbox": _stats(0.20), "segm": _stats(0.05)}},
        "gaussian_noise": {"1": {"bbox": _stats(0.10), "segm": _stats(0.10)},
                           "2": {"bbox": _stats(0.00), "segm": _stats(0.10)}},
    },
}


def test_mpc_is_the_mean_over_corruptions_and_severities_rpc_its_share_of_clean():
    bbox = robustness_summary(RESULTS, "bbox")
    assert bbox["clean"] == pytest.approx(0.40)
    assert bbox["mPC"] == pytest.approx((0.30 + 0.20 + 0.10 + 0.00) / 4)  # 0.15
    assert bbox["rPC"] == pytest.approx(0.15 / 0.40)  # 0.375
    segm = robustness_summary(RESULTS, "segm")
    assert segm["mPC"] == pytest.approx(0.10) and segm["rPC"] == pytest.approx(0.5)
    ap50 = robustness_summary(RESULTS, "bbox", stat="AP50")
    assert ap50["mPC"] == pytest.approx(0.35) and ap50["rPC"] == pytest.approx(0.35 / 0.60)


def test_severity_zero_entries_and_missing_pieces():
    with_zero = {**RESULTS, "corruptions": {
        **RESULTS["corruptions"], "fog": {**RESULTS["corruptions"]["fog"],
                                          "0": {"bbox": _stats(0.9)}}}}
    assert robustness_summary(with_zero)["mPC"] == pytest.approx(0.15)  # 0 is not corrupted
    no_clean = {"corruptions": RESULTS["corruptions"]}
    assert robustness_summary(no_clean) == {"clean": None, "mPC": pytest.approx(0.15),
                                            "rPC": None}
    only_clean = {"clean": RESULTS["clean"], "corruptions": {}}
    assert robustness_summary(only_clean) == {"clean": pytest.approx(0.4), "mPC": None,
                                              "rPC": None}
    zero_clean = {"clean": {"bbox": _stats(0.0)}, "corruptions": RESULTS["corruptions"]}
    assert robustness_summary(zero_clean)["rPC"] is None


def test_named_stats_needs_twelve_numbers():
    assert list(named_stats(range(12))) == list(STAT_NAMES)
    with pytest.raises(ValueError, match="expected 12"):
        named_stats([0.1] * 6)


def test_table_rows_columns_and_summary_line():
    lines = format_robustness(RESULTS, "bbox").splitlines()
    assert lines[0] == "bbox AP under corruption"
    assert lines[1].split() == ["corruption", "sev", "0", "sev", "1", "sev", "2", "mean"]
    assert lines[2].split() == ["fog", "0.400", "0.300", "0.200", "0.250"]
    assert lines[3].split() == ["gaussian_noise", "0.400", "0.100", "0.000", "0.050"]
    assert lines[4] == "clean AP: 0.400   mPC: 0.150   rPC: 37.5%"
    no_clean = format_robustness({"corruptions": RESULTS["corruptions"]}, "bbox").splitlines()
    assert no_clean[1].split()[:3] == ["corruption", "sev", "1"]
    assert no_clean[-1] == "clean AP: -   mPC: 0.150   rPC: -"
