"""EMOS recovers known coefficients, falls back to global for thin stations, serialises."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast.baselines import EmosModel, fit_emos


def _synthetic(
    n: int = 4000,
    a: float = 1.5,
    b: float = 0.8,
    s: float = 0.7,
    seed: int = 0,
    stations: tuple[str, ...] = ("A", "B"),
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fc = rng.normal(280.0, 5.0, n)
    return pd.DataFrame(
        {
            "station": rng.choice(list(stations), n),
            "lead_time": rng.choice([6.0, 12.0, 24.0], n),
            "fc_t2m": fc,
            "obs_t2m": a + b * fc + rng.normal(0.0, s, n),
        }
    )


def test_global_emos_recovers_normal_regression() -> None:
    a, b, s = 1.5, 0.8, 0.7
    train = _synthetic(a=a, b=b, s=s)
    model = fit_emos(train, "t2m", family="normal")
    grid = pd.DataFrame({"fc_t2m": np.linspace(270.0, 290.0, 21), "lead_time": 12.0})
    params = model.predict(grid)
    slope, intercept = np.polyfit(grid["fc_t2m"], params["loc"], 1)
    assert slope == pytest.approx(b, abs=0.02)
    assert intercept + slope * 280.0 == pytest.approx(a + b * 280.0, abs=0.05)
    np.testing.assert_allclose(params["scale"], s, rtol=0.06)


def test_local_emos_falls_back_to_global_for_thin_stations() -> None:
    train = _synthetic(stations=("A", "B"))
    thin = _synthetic(n=20, a=-10.0, seed=1, stations=("C",))
    model = fit_emos(pd.concat([train, thin]), "t2m", family="normal", by_station=True, min_rows=50)
    assert set(model.station_coefs) == {"A", "B"}
    test = pd.DataFrame({"station": ["C", "A"], "fc_t2m": 280.0, "lead_time": 12.0})
    glob = model.predict(test.assign(station="unknown"))
    local = model.predict(test)
    assert local["loc"][0] == pytest.approx(glob["loc"][0])  # C uses the global coefficients
    assert local["loc"][1] == pytest.approx(1.5 + 0.8 * 280.0, abs=0.1)


def test_local_emos_adapts_to_station_bias() -> None:
    a = _synthetic(n=1500, a=1.0, stations=("A",))
    b = _synthetic(n=1500, a=3.0, seed=2, stations=("B",))
    model = fit_emos(pd.concat([a, b]), "t2m", family="normal", by_station=True)
    test = pd.DataFrame({"station": ["A", "B"], "fc_t2m": 280.0, "lead_time": 12.0})
    loc = model.predict(test)["loc"]
    assert loc[1] - loc[0] == pytest.approx(2.0, abs=0.15)


def test_emos_round_trips_through_json() -> None:
    model = fit_emos(_synthetic(n=800), "t2m", by_station=True, lead_bins=3)
    assert model.family == "normal" and len(model.edges) == 2
    again = EmosModel.from_dict(json.loads(json.dumps(model.to_dict())))
    test = _synthetic(n=50, seed=5)
    for k, v in model.predict(test).items():
        np.testing.assert_array_equal(again.predict(test)[k], v)


def test_emos_precipitation_beats_raw_on_censored_toy() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    fc = np.maximum(rng.gamma(0.6, 3.0, n) - 0.5, 0.0)
    obs = np.maximum(0.6 * fc + rng.logistic(0.0, 0.8, n) - 0.3, 0.0)
    df = pd.DataFrame({"station": "X", "lead_time": 6.0, "fc_tp": fc, "obs_tp": obs})
    model = fit_emos(df.iloc[:2000], "tp")
    assert model.family == "censored_logistic" and model.features == ["fc_tp"]
    test = df.iloc[2000:]
    from probcast.dists import Predictive

    fcst = Predictive.from_params("tp", model.family, model.predict(test))
    crps = fcst.crps(test["obs_tp"].to_numpy()).mean()
    mae = np.abs(test["fc_tp"] - test["obs_tp"]).mean()
    assert crps < 0.8 * mae


def test_emos_missing_forecast_gives_nan_and_bad_input_errors() -> None:
    model = fit_emos(_synthetic(n=500), "t2m")
    out = model.predict(pd.DataFrame({"fc_t2m": [np.nan, 280.0], "lead_time": [6.0, 6.0]}))
    assert np.isnan(out["loc"][0]) and np.isfinite(out["loc"][1])
    with pytest.raises(KeyError, match="obs_tp"):
        fit_emos(_synthetic(n=100), "tp")
    with pytest.raises(KeyError, match="unknown distribution"):
        fit_emos(_synthetic(n=100), "t2m", family="nope")
    with pytest.raises(KeyError, match=r"lacks column\(s\) \['fc2_t2m'\] needed for 't2m'"):
        fit_emos(_synthetic(n=100), "t2m", extra_predictors=["fc2_t2m"])
    blank = _synthetic(n=100).assign(obs_t2m=np.nan)
    with pytest.raises(ValueError, match="no training row has finite values"):
        fit_emos(blank, "t2m")


def test_rows_with_a_missing_predictor_are_left_out_of_the_fit() -> None:
    """A row missing any predictor or the observation is dropped, not fitted as NaN."""
    train = _synthetic(n=2000).assign(fc2_t2m=lambda t: t["fc_t2m"] + 0.1)
    holes = train.copy()
    holes.loc[::7, "obs_t2m"] = np.nan
    holes.loc[3::11, "fc2_t2m"] = np.nan
    kept = holes.dropna()
    a = fit_emos(holes, "t2m", family="normal", extra_predictors=["fc2_t2m"])
    b = fit_emos(kept, "t2m", family="normal", extra_predictors=["fc2_t2m"])
    np.testing.assert_allclose(a.global_coefs, b.global_coefs, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(a.global_coefs))


def test_fit_runs_on_the_host_cpu_where_the_default_device_is_an_accelerator(monkeypatch):
    """With an accelerator as default backend the fit pins JAX to the CPU; same result."""
    import contextlib

    import jax
    import jax.numpy as jnp

    from probcast.baselines import emos

    train = _synthetic(n=2000)
    want = fit_emos(train, "t2m", by_station=True, min_rows=10)
    assert isinstance(emos.on_host(), contextlib.nullcontext)  # a CPU machine: nothing to do
    monkeypatch.setattr(emos.jax, "default_backend", lambda: "gpu")
    assert not isinstance(emos.on_host(), contextlib.nullcontext)
    with emos.on_host():
        assert jnp.zeros(1).devices() == {jax.devices("cpu")[0]}
    got = fit_emos(train, "t2m", by_station=True, min_rows=10)
    np.testing.assert_allclose(got.global_coefs, want.global_coefs, rtol=1e-9)
    assert got.station_coefs.keys() == want.station_coefs.keys()
    for station, coefs in want.station_coefs.items():
        np.testing.assert_allclose(np.asarray(got.station_coefs[station], float), coefs, rtol=1e-9)


def test_lead_time_is_no_predictor_where_every_bin_holds_one_lead() -> None:
    # with one lead time a bin, the lead-time column is each bin's intercept again: only
    # the ridge would decide its coefficient
    train = _synthetic(n=1500)
    per_lead = fit_emos(train, "t2m", family="normal", lead_bins=3)
    assert per_lead.features == ["fc_t2m"] and len(per_lead.edges) == 2
    assert fit_emos(train, "t2m", family="normal", lead_bins=2).features == [
        "fc_t2m",
        "lead_time",
    ]  # the second bin holds 12 h and 24 h
    test = _synthetic(n=300, seed=4)
    loc = per_lead.predict(test)["loc"]
    np.testing.assert_allclose(loc, 1.5 + 0.8 * test["fc_t2m"], atol=0.15)


def test_varies_within_groups() -> None:
    from probcast.baselines.emos import varies_within

    f = np.array([[1.0, 5.0, 2.0], [1.0, 6.0, 2.0], [3.0, 7.0, 2.0], [3.0, 7.0, 2.0]])
    groups = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(varies_within(f, groups), [False, True, False])
    np.testing.assert_array_equal(varies_within(f, np.zeros(4, int)), [True, True, False])
