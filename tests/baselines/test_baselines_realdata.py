"""Baselines on the verif-norway-precip benchmark: EMOS must beat the raw forecast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from probcast.baselines import BASELINES, make


@pytest.mark.realdata
@pytest.mark.slow
def test_baselines_on_norway_precip(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from probcast.data.prepare import prepare

    data = prepare("verif-norway-precip")
    test = data.test[np.isfinite(data.test["obs_tp"]) & np.isfinite(data.test["fc_tp"])]
    y = test["obs_tp"].to_numpy()
    scores = {}
    for name in BASELINES:
        forecast = make(name, "tp").fit(data.train).predict(test)
        scores[name] = float(np.nanmean(forecast.crps(y)))
    with capsys.disabled():
        print("\nverif-norway-precip test CRPS:", {k: round(v, 4) for k, v in scores.items()})
    assert scores["raw"] == pytest.approx(float(np.mean(np.abs(test["fc_tp"] - y))), rel=1e-5)
    assert scores["dressing"] < scores["raw"]
    assert scores["emos-global"] < 0.85 * scores["raw"]
    assert scores["emos-local"] < scores["emos-global"]
