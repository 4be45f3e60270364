"""Threshold labels (``brier_<t>``, ``p_<t>``) are distinct for distinct thresholds.

Six significant digits (``%g``) labelled 275.0001 and 275.0004 both ``275``: one Brier score
silently overwrote the other. Ordinary thresholds keep their ``%g`` labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from probcast.dists import Predictive
from probcast.testing import verification as syn
from probcast.verify.evaluate import verify
from probcast.verify.pointwise import case_scores, threshold_label, threshold_labels

FAST: dict[str, Any] = {"n_boot": 0, "multivariate": False}


@pytest.mark.parametrize(
    ("t", "label"),
    [(0.1, "0.1"), (1.0, "1"), (5.0, "5"), (275.0, "275"), (273.15, "273.15"),
     (303.15, "303.15"), (0.5, "0.5"), (1e-05, "1e-05"), (0.0, "0"), (-3.5, "-3.5"),
     (0.1 + 0.2, "0.3"), (273.15 + 1.0, "274.15")],
)  # fmt: skip
def test_ordinary_thresholds_keep_their_labels(t: float, label: str):
    assert threshold_label(t) == label


@pytest.mark.parametrize("t", [275.0001, 275.0004, 1234567.0, 0.1234567, 1 + 1e-9, 280.0 + 1e-7])
def test_labels_give_the_threshold_back(t: float):
    lab = threshold_label(t)
    assert float(lab) == t
    assert threshold_label(float(lab)) == lab  # stable when read back
    assert lab != f"{t:g}"


def test_close_thresholds_get_distinct_labels():
    assert threshold_labels([275.0001, 275.0004]) == ["275.0001", "275.0004"]
    assert threshold_label(1234567.0) == "1234567"


def test_thresholds_differing_by_float_noise_only_are_refused():
    with pytest.raises(ValueError, match=r"of tp 0\.3 and 0\.30000000000000004.*label '0\.3'"):
        threshold_labels([0.3, 0.1 + 0.2], "tp")
    fc = Predictive.from_members("t2m", np.array([[279.0, 281.0], [280.5, 282.0]]))
    with pytest.raises(ValueError, match="float noise"):
        case_scores(fc, np.array([280.0, 281.0]), thresholds=[280.0, 280.0 + 1e-13])


def test_verify_scores_each_of_two_close_thresholds():
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=6)
    members = syn.members_table(truth, mu, sigma, n_members=8)
    lo, hi = 275.0001, 275.0004
    truth.loc[:9, "obs_t2m"] = 275.0002  # events of Y > lo but not of Y > hi
    cols = [c for c in members if c.startswith("t2m_m")]
    members.loc[:9, cols[:4]] = 275.0003  # half the members between the thresholds
    ver = verify(truth, {"ens": members}, thresholds={"t2m": [lo, hi]}, **FAST)
    x, y = members[cols].to_numpy(), truth["obs_t2m"].to_numpy()
    briers = []
    for t in (lo, hi):
        want = np.mean(((x > t).mean(axis=1) - (y > t)) ** 2)
        got = ver.value("ens", "t2m", f"brier_{threshold_label(t)}")
        assert got == pytest.approx(want, rel=1e-12)
        assert ver.value("ens", "t2m", f"brier_n_{threshold_label(t)}") == len(y)
        briers.append(got)
    assert briers[0] != briers[1]
    assert set(ver.diagnostics["ens"]["t2m"]["reliability"]) == {"275.0001", "275.0004"}
    assert ver.value("ens", "t2m", "brier_275") != ver.value("ens", "t2m", "brier_275")  # NaN


def test_verify_refuses_thresholds_within_float_noise():
    truth, mu, sigma = syn.truth_table(n_stations=2, n_inits=4)
    members = syn.members_table(truth, mu, sigma, n_members=4)
    with pytest.raises(ValueError, match="share the label '280'"):
        verify(truth, {"ens": members}, thresholds={"t2m": [280.0, 280.0 + 1e-12]}, **FAST)
