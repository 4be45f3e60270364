"""Issue 13: ``probcast predict --units t2m=degC,tp=mm``: thresholds given and outputs written
in the user's units, recorded in the output's metadata; ``probcast verify`` converts back to
canonical units, so predict --units -> verify scores exactly as without."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.cli import main
from probcast.dists import DISTRIBUTIONS
from probcast.ingest.gridded import write_dataset
from probcast.predict.request import PredictRequest, RequestError
from probcast.predict.runner import run
from probcast.products import build_products
from probcast.products.table_files import read_predictions, write_predictions
from probcast.products.units import (
    FAMILY_BOUNDS,
    params_convert,
    products_to_units,
    read_units,
    table_to_canonical,
    table_to_units,
)
from probcast.testing import products as product_data
from probcast.testing.grids import forecast_grid
from probcast.testing.stations import station_table
from probcast.testing.verification import (
    members_table,
    normal_params_table,
    quantiles_table,
    truth_table,
)
from probcast.units import user_units

HEADS = {"t2m": "normal", "tp": "censored_logistic", "tcc": "censored_normal_01"}


def test_every_family_has_known_bounds():
    assert set(FAMILY_BOUNDS) == set(DISTRIBUTIONS)


@pytest.mark.parametrize(
    ("family", "units", "expected"),
    [
        ("normal", {"t2m": "degC"}, True),
        ("censored_logistic", {"tp": "mm"}, True),
        ("censored_logistic", {"tp": "cm"}, True),
        ("truncated_normal", {"ws10": "knot"}, True),
        ("censored_logistic", {"t2m": "degC"}, False),  # the bound 0 K would move
        ("censored_normal_01", {"tcc": "%"}, False),  # the bound 1 would move
        ("censored_normal_01", {"tcc": "1"}, True),
        (None, {"t2m": "degC"}, False),
    ],
)
def test_params_convert_only_where_the_family_is_kept(family, units, expected):
    (unit,) = user_units(units).values()
    assert params_convert(family, unit) is expected


def _forecast(n_members: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A truth table and a forecast table with every form of t2m (canonical units)."""
    truth, mu, sigma = truth_table(n_stations=3, n_inits=6)
    fc = normal_params_table(truth, mu, sigma)
    fc = fc.merge(members_table(truth, mu, sigma, n_members=n_members))
    fc = fc.merge(quantiles_table(truth, mu, sigma, levels=(0.1, 0.5, 0.9)))
    fc["t2m_p_gt_273.15"] = 0.5
    fc["obs_t2m"] = truth["obs_t2m"]
    return truth, fc


def test_table_round_trip_through_user_units():
    _, fc = _forecast()
    out, meta = table_to_units(fc, {"t2m": "degF"}, HEADS, {"t2m": [32.0]})
    assert meta == {"units": {"t2m": "degF"}}
    assert "t2m_p_gt_32" in out and "t2m_p_gt_273.15" not in out
    np.testing.assert_allclose(out["t2m_loc"], (fc["t2m_loc"] - 273.15) * 9 / 5 + 32)
    np.testing.assert_allclose(out["t2m_scale"], fc["t2m_scale"] * 9 / 5)
    np.testing.assert_allclose(out["t2m_q0.5"], (fc["t2m_q0.5"] - 273.15) * 9 / 5 + 32)
    np.testing.assert_allclose(out["obs_t2m"], (fc["obs_t2m"] - 273.15) * 9 / 5 + 32)
    back = table_to_canonical(out, meta)
    assert list(back.columns) == list(fc.columns)
    pd.testing.assert_frame_equal(back, fc, rtol=1e-12)


def test_params_that_cannot_convert_stay_canonical_and_say_so():
    frame = pd.DataFrame({"tcc_loc": [0.4], "tcc_scale": [0.1], "tcc_q0.5": [0.4]})
    out, meta = table_to_units(frame, {"tcc": "%"}, HEADS)
    assert meta == {"units": {"tcc": "%"}, "param_units": {"tcc": "1"}}
    assert out["tcc_loc"].item() == 0.4 and out["tcc_q0.5"].item() == pytest.approx(40.0)
    pd.testing.assert_frame_equal(table_to_canonical(out, meta), frame)


def test_units_for_a_variable_without_forecast_is_an_error():
    _, fc = _forecast()
    with pytest.raises(ValueError, match=r"--units tp=mm: the prediction has no forecast"):
        table_to_units(fc, {"tp": "mm"}, HEADS)


def _crps(verdir: Path) -> float:
    scores = pd.read_csv(verdir / "scores.csv")
    hit = scores[(scores.metric == "crps") & (scores.by == "all")]
    return float(hit["value"].iloc[0])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".nc"])
def test_units_metadata_in_every_format(tmp_path: Path, suffix: str):
    _, fc = _forecast()
    user, meta = table_to_units(fc, {"t2m": "degC"}, HEADS)
    path = write_predictions(
        user, tmp_path / f"p{suffix}", families={"t2m": "normal"}, metadata=meta
    )
    assert read_units(path) == meta
    table, families = read_predictions(path, canonical=False)
    assert families == {"t2m": "normal"}
    back = table_to_canonical(table, read_units(path))
    np.testing.assert_allclose(back["t2m_loc"], fc["t2m_loc"], rtol=1e-12)
    np.testing.assert_allclose(back["t2m_m003"], fc["t2m_m003"], rtol=1e-12)


def test_verify_reads_the_units_back(tmp_path: Path, capsys):
    """Params and members in degC score the same CRPS as in K (``probcast verify``)."""
    truth, fc = _forecast()
    truth.to_parquet(tmp_path / "truth.parquet")
    user, meta = table_to_units(fc, {"t2m": "degC"}, HEADS)
    crps = {}
    for name, table, extra in (("k", fc, {}), ("c", user, meta)):
        for form, drop in (("params", []), ("members", ["t2m_loc", "t2m_scale"])):
            path = tmp_path / f"{name}_{form}.csv"
            families = {} if drop else {"t2m": "normal"}
            write_predictions(table.drop(columns=drop), path, families=families, metadata=extra)
            out = tmp_path / f"v_{name}_{form}"
            args = [f"--truth={tmp_path / 'truth.parquet'}", f"--forecast=m={path}"]
            assert main(["verify", *args, f"--out={out}", "--n-boot=5"]) == 0
            crps[name, form] = _crps(out)
    capsys.readouterr()
    for form in ("params", "members"):
        assert crps["c", form] == pytest.approx(crps["k", form], rel=1e-9)


def test_gridded_products_in_user_units():
    fields = product_data.params((4, 6), variables=("t2m", "tp"))
    heads = {"t2m": "normal", "tp": "censored_logistic"}
    products = build_products(
        fields,
        families=heads,
        percentiles=[10.0, 50.0, 90.0],
        thresholds={"t2m": [278.15, 283.15], "tp": [1.0]},
        n_members=3,
    )
    user = {"t2m": "degC", "tp": "mm"}
    out = products_to_units(products, user, heads, {"t2m": [5.0, 10.0]})
    pct, old = out["percentiles"], products["percentiles"]
    np.testing.assert_allclose(pct["t2m"].values, old["t2m"].values - 273.15, atol=1e-4)
    assert pct["t2m"].attrs["units"] == "degC" and pct.attrs["probcast_units"] == "t2m=degC,tp=mm"
    prob = out["probabilities_t2m"]
    assert prob["threshold"].values.tolist() == [5.0, 10.0]
    assert prob["threshold"].attrs["units"] == "degC"
    xr.testing.assert_equal(
        prob.drop_vars("threshold"), products["probabilities_t2m"].drop_vars("threshold")
    )
    params = out["parameters"]
    np.testing.assert_allclose(
        params["t2m_loc"].values, products["parameters"]["t2m_loc"].values - 273.15, atol=1e-4
    )
    assert params["t2m_scale"].attrs["units"] == "degC"
    np.testing.assert_array_equal(params["tp_scale"].values, products["parameters"]["tp_scale"])
    with pytest.raises(ValueError, match=r"--units given for \['ws10'\]"):
        products_to_units(products, {"ws10": "knot"}, heads)


def test_bad_units_option_is_a_clear_error(tmp_path: Path, capsys):
    args = ["predict", f"--model={tmp_path}", f"--input={tmp_path / 'x.parquet'}"]
    assert main([*args, f"--output={tmp_path / 'p.csv'}", "--units=t2m=mm"]) == 2  # usage
    err = capsys.readouterr().err
    assert "--units=t2m=mm: variable 't2m' has units 'mm'; expected 'K'" in err and "degC" in err
    with pytest.raises(RequestError, match=r"unknown variable 'foo'"):
        PredictRequest(model=tmp_path, input="x.csv", units={"foo": "K"})


@pytest.fixture(scope="module")
def station_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("units")
    table = station_table(n_stations=2, n_inits=12, seed=1)
    table[table.init_time < "2021-01-09"].to_parquet(root / "train.parquet")
    table[table.init_time >= "2021-01-10"].to_parquet(root / "test.parquet")
    args = ["train", "--config=tiny", f"--workdir={root / 'model'}", "--config.train.epochs=1"]
    args += [f"--config.data.path={root / 'train.parquet'}", "--config.train.refit=false"]
    assert main(args) == 0
    return root


@pytest.mark.slow
def test_predict_units_then_verify_gives_the_same_crps(station_model: Path, capsys):
    root = station_model
    common = [f"--model={root / 'model'}", f"--input={root / 'test.parquet'}", "--members=5"]
    common += ["--quantiles=0.1,0.5,0.9"]
    k, c = root / "k.parquet", root / "c.nc"
    assert main(["predict", *common, f"--output={k}", "--thresholds=t2m:273.15,278.15"]) == 0
    user = ["--units=t2m=degF,tp=cm", "--thresholds=t2m:32,41", "--thresholds=tp:0.01"]
    assert main(["predict", *common, f"--output={c}", *user]) == 0
    keys = ["station", "init_time", "lead_time"]
    a = read_predictions(k)[0].sort_values(keys, ignore_index=True)
    b = read_predictions(c, canonical=False)[0].sort_values(keys, ignore_index=True)  # cube
    assert read_units(c) == {"units": {"t2m": "degF", "tp": "cm"}}
    np.testing.assert_allclose(b["t2m_p_gt_32"], a["t2m_p_gt_273.15"], atol=1e-6)
    np.testing.assert_allclose(b["t2m_p_gt_41"], a["t2m_p_gt_278.15"], atol=1e-6)
    np.testing.assert_allclose(b["t2m_loc"], (a["t2m_loc"] - 273.15) * 1.8 + 32, rtol=1e-6)
    np.testing.assert_allclose(b["tp_scale"], a["tp_scale"] / 10.0, rtol=1e-6)
    np.testing.assert_allclose(b["tp_q0.9"], a["tp_q0.9"] / 10.0, rtol=1e-6, atol=1e-9)
    for name, path in (("k", k), ("c", c)):
        args = [f"--truth={root / 'test.parquet'}", f"--forecast=m={path}", "--n-boot=5"]
        assert main(["verify", *args, f"--out={root / name}"]) == 0
    sk, sc = (pd.read_csv(root / n / "scores.csv") for n in ("k", "c"))
    crps = [
        s[(s.metric == "crps") & (s.by == "all")].set_index("variable")["value"] for s in (sk, sc)
    ]
    pd.testing.assert_series_equal(crps[0], crps[1], rtol=1e-6)
    meta = json.loads((root / "c" / "scores.json").read_text())["meta"]
    assert meta["forecast_units"] == {"m": {"units": {"t2m": "degF", "tp": "cm"}}}
    capsys.readouterr()


@pytest.mark.slow
def test_gridded_predict_in_user_units(tmp_path: Path):
    """A degC grid (its units attribute) and degC outputs equal the K run, converted."""
    ds = forecast_grid((8, 10), 6, variables=("t2m",))
    write_dataset(ds.isel(forecast_reference_time=slice(0, 5)), tmp_path / "train.nc")
    test = ds.isel(forecast_reference_time=slice(5, 6)).drop_vars("obs_t2m")
    args = ["train", "--config=tiny", f"--workdir={tmp_path / 'model'}"]
    args += [f"--config.data.path={tmp_path / 'train.nc'}", "--config.train.epochs=1"]
    assert main([*args, "--config.features.neighbourhood=", "--config.model.embed_dim=0"]) == 0
    celsius = test.copy()
    celsius["fc_t2m"] = (test["fc_t2m"] - 273.15).assign_attrs(units="degC")
    common = {"model": tmp_path / "model", "members": 3, "percentiles": (10.0, 50.0, 90.0)}
    common["inflevel"] = 1.0  # no bit rounding: compare exactly
    k = run(PredictRequest(input=test, output=tmp_path / "k" / "p.nc", **common,
                           thresholds={"t2m": (278.15, 283.15)}))  # fmt: skip
    c = run(PredictRequest(input=celsius, output=tmp_path / "c" / "p.nc", **common,
                           thresholds={"t2m": (5.0, 10.0)}, units={"t2m": "degC"}))  # fmt: skip
    with xr.open_dataset(k.paths["percentiles"]) as a, xr.open_dataset(c.paths["percentiles"]) as b:
        np.testing.assert_allclose(b["t2m"].values, a["t2m"].values - 273.15, atol=1e-3)
        assert b["t2m"].attrs["units"] == "degC"
    prob = "probabilities_t2m"
    with xr.open_dataset(k.paths[prob]) as a, xr.open_dataset(c.paths[prob]) as b:
        assert b["threshold"].values.tolist() == [5.0, 10.0]
        assert b["threshold"].attrs["units"] == "degC"
        name = "probability_of_air_temperature_above_threshold"
        np.testing.assert_allclose(b[name].values, a[name].values, atol=1e-5)


def test_thresholds_and_units_of_variables_the_model_does_not_predict() -> None:
    from probcast.products.units import check_thresholds_for, check_units_for

    check_thresholds_for(["t2m", "tp"], {"tp": [1.0]})
    check_thresholds_for(["t2m"], None)
    with pytest.raises(ValueError, match=r"thresholds given for \['ws10'\], which the model"):
        check_thresholds_for(["t2m", "tp"], {"ws10": [1.0], "tp": [1.0]})
    with pytest.raises(ValueError, match=r"--units given for \['ws10'\]"):
        check_units_for(["t2m"], {"ws10": "km/h"})
