from __future__ import annotations

import numpy as np
import pandas as pd

from probcast.sources.qc import apply_qc


def _obs(**cols):
    n = len(next(iter(cols.values())))
    t = pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"station": "A", "time": t, **{f"obs_{k}": v for k, v in cols.items()}})


def _counts(removed):
    return {(r["check"], r["variable"]): r["removed"] for r in removed.to_dict("records")}


def test_range_and_spike():
    t = [270.0, 271.0, 290.0, 271.5, 272.0, 400.0]
    clean, removed = apply_qc(_obs(t2m=t))
    # 400 K out of range; 290 differs from 271 and 271.5 by > 8 K in the same direction
    assert np.isnan(clean["obs_t2m"][[2, 5]]).all()
    assert clean["obs_t2m"][[0, 1, 3, 4]].tolist() == [270.0, 271.0, 271.5, 272.0]
    assert _counts(removed) == {("range", "t2m"): 1, ("spike", "t2m"): 1}


def test_steady_rise_is_not_a_spike():
    clean, removed = apply_qc(_obs(t2m=[270.0, 280.0, 290.0, 300.0]))
    assert removed.empty and clean["obs_t2m"].notna().all()


def test_persistence():
    msl = [101000.0] * 13 + [101100.0]  # same value over 12 h: stuck
    ws = [0.0] * 14  # calm for 13 h is allowed
    clean, removed = apply_qc(_obs(msl=msl, ws10=ws))
    assert clean["obs_msl"].isna().sum() == 13 and clean["obs_msl"].iloc[13] == 101100.0
    assert _counts(removed) == {("persistence", "msl"): 13}


def test_consistency():
    clean, removed = apply_qc(
        _obs(
            t2m=[280.0, 280.0],
            td2m=[281.0, 279.0],
            ws10=[0.0, 3.0],
            wdir10=[90.0, 90.0],
            gust=[5.0, 2.0],
        )
    )
    assert np.isnan(clean["obs_td2m"][0]) and clean["obs_td2m"][1] == 279.0
    assert np.isnan(clean["obs_wdir10"][0]) and clean["obs_wdir10"][1] == 90.0
    assert clean["obs_gust"][0] == 5.0 and np.isnan(clean["obs_gust"][1])
    assert _counts(removed) == {
        ("consistency", "td2m"): 1,
        ("consistency", "wdir10"): 1,
        ("consistency", "gust"): 1,
    }
