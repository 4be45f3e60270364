"""Gridded verification: product files against a gridded analysis (probcast verify on grids).

The products are built from a synthetic grid (``probcast.testing.grids.forecast_grid``) by
the real product writers; the scores must equal those of station verification of the same
values (every grid point a station), which :mod:`probcast.verify.evaluate` computes case by
case.
"""

from __future__ import annotations

import base64
import json
import re
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.cli import main
from probcast.ingest.gridded import write_dataset
from probcast.products import build_products, write_products
from probcast.products.table import (
    member_columns,
    probability_columns,
    quantile_columns,
)
from probcast.testing.grids import forecast_grid
from probcast.verify import grid_inputs
from probcast.verify.evaluate import verify
from probcast.verify.gridded import BLOCK_VALUES, verify_grid

SHAPE = (12, 16)
THRESHOLDS = [0.1, 1.0, 5.0]
FRT, FP = "forecast_reference_time", "forecast_period"
PROB = "probability_of_precipitation_amount_above_threshold"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Products (members, percentiles, probabilities, parameters), analysis and raw grid."""
    root = tmp_path_factory.mktemp("gridverif")
    ds = forecast_grid(SHAPE, 6, lead_hours=(24.0, 48.0), seed=3)
    obs = ds["obs_tp"].values
    obs[:-1, 1] = obs[1:, 0]  # one analysis per valid time: run r + 48 h = run r+1 + 24 h
    obs[0, 0, :3, :4] = np.nan  # a masked corner in one analysis
    fc = ds["fc_tp"]
    params = xr.Dataset({"tp_loc": fc - 0.2, "tp_scale": 0.3 + 0.2 * fc})
    products = build_products(
        params,
        families={"tp": "censored_logistic"},
        n_members=9,
        percentiles=[10, 25, 50, 75, 90],
        thresholds={"tp": THRESHOLDS},
    )
    for name, product in products.items():
        write_products(product, root / f"run_{name}.nc", min_keepbits=7)
    write_dataset(ds[["obs_tp"]], root / "analysis.nc")
    write_dataset(ds[["fc_tp"]], root / "raw.nc")
    return root


def _open(case: Path) -> tuple[xr.Dataset, list[grid_inputs.GridForecast]]:
    truth = grid_inputs.open_truth(case / "analysis.nc")
    forecasts = [
        grid_inputs.open_forecast(
            "model", [case / "run_parameters.nc", case / "run_probabilities_tp.nc"]
        ),
        grid_inputs.open_forecast("ens", [case / "run_members.nc"]),
        grid_inputs.open_forecast("pct", [case / "run_percentiles.nc"]),
        grid_inputs.open_forecast("probs", [case / "run_probabilities_tp.nc"]),
        grid_inputs.open_forecast("raw", [case / "raw.nc"]),
    ]
    return truth, forecasts


def _station_tables(case: Path) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The same values as station tables: one station per grid point."""

    def frame(da: xr.DataArray, dim: str | None = None) -> pd.DataFrame:
        da = da.transpose(FRT, FP, "y", "x", *([dim] if dim else []))
        n = da.shape[0] * da.shape[1] * da.shape[2] * da.shape[3]
        values = np.asarray(da.values, "float64").reshape(n, -1)
        frt, fp, y, x = np.meshgrid(
            *(np.asarray(da[d].values) for d in da.dims[:2]),
            np.arange(da.shape[2]),
            np.arange(da.shape[3]),
            indexing="ij",
        )
        keys = pd.DataFrame(
            {
                "station": [f"y{j}x{i}" for j, i in zip(y.ravel(), x.ravel(), strict=True)],
                "init_time": pd.to_datetime(frt.ravel(), utc=True),
                "lead_time": pd.to_timedelta(fp.ravel()) / pd.Timedelta(hours=1),
            }
        )
        return keys, values

    truth_ds = xr.open_dataset(case / "analysis.nc")
    keys, obs = frame(truth_ds["obs_tp"])
    truth = keys.assign(obs_tp=obs[:, 0])
    with xr.open_dataset(case / "run_parameters.nc") as p:
        _, loc = frame(p["tp_loc"])
        _, scale = frame(p["tp_scale"])
    with xr.open_dataset(case / "run_probabilities_tp.nc") as p:
        _, probs = frame(p[PROB], "threshold")
    with xr.open_dataset(case / "run_members.nc") as p:
        _, members = frame(p["tp"], "realization")
    with xr.open_dataset(case / "run_percentiles.nc") as p:
        _, pct = frame(p["tp"], "percentile")
    with xr.open_dataset(case / "raw.nc") as p:
        _, raw = frame(p["fc_tp"])
    p_cols = probability_columns("tp", THRESHOLDS, probs)
    tables = {
        "model": keys.assign(tp_loc=loc[:, 0], tp_scale=scale[:, 0], **p_cols),
        "ens": keys.assign(**member_columns("tp", members)),
        "pct": keys.assign(**quantile_columns("tp", [0.1, 0.25, 0.5, 0.75, 0.9], pct)),
        "raw": keys.assign(fc_tp=raw[:, 0]),
    }
    return truth, tables


METRICS = [
    "n",
    "n_dropped",
    "crps",
    "crps_fair",
    "mae",
    "rmse",
    "bias",
    "spread",
    "spread_skill",
    "spread_skill_lo",
    "spread_skill_hi",
    "coverage_50",
    "coverage_90",
    "crpss",
    *(f"brier{s}_{t:g}" for s in ("", "_rel", "_res", "_unc") for t in THRESHOLDS),
]


def test_grid_scores_equal_station_verification(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every form and every lead time, scored in several blocks, as case-by-case tables."""
    monkeypatch.setattr("probcast.verify.gridded.BLOCK_VALUES", 3000)  # row bands
    truth, forecasts = _open(case)
    gv = verify_grid(truth, forecasts, reference="raw", n_boot=50, thresholds={"tp": THRESHOLDS})
    assert BLOCK_VALUES > 3000
    table_truth, tables = _station_tables(case)
    ref = verify(
        table_truth,
        tables,
        reference="raw",
        families={"model": {"tp": "censored_logistic"}},
        thresholds={"tp": THRESHOLDS},
        n_boot=50,
    )
    checked = 0
    for method in tables:
        for by, key in (("all", "all"), ("lead_time", "24"), ("lead_time", "48")):
            for metric in METRICS:
                want = ref.value(method, "tp", metric, by, key)
                got = gv.ver.value(method, "tp", metric, by, key)
                assert got == pytest.approx(want, rel=2e-5, abs=1e-9, nan_ok=True), (
                    method,
                    by,
                    key,
                    metric,
                )
                checked += np.isfinite(want)
    assert checked > 150
    # the spread-skill interval and the PIT noise come from per-run sums (PITs are
    # randomised differently from the station path: the noise is of the same size)
    for method in ("model", "ens"):
        lo, ratio, hi = (
            gv.ver.value(method, "tp", m)
            for m in ("spread_skill_lo", "spread_skill", "spread_skill_hi")
        )
        assert lo < ratio < hi
        noise, want = gv.ver.value(method, "tp", "pit_noise"), ref.value(method, "tp", "pit_noise")
        assert np.isfinite(noise) and noise == pytest.approx(want, rel=0.5)
    assert ref.value("model", "tp", "n_dropped") == 12 == gv.ver.value("model", "tp", "n_dropped")
    # probabilities only: Brier scores from the file, no CRPS
    assert gv.ver.value("probs", "tp", "brier_1") == pytest.approx(
        ref.value("model", "tp", "brier_1"), rel=1e-9
    )
    assert np.isnan(gv.ver.value("probs", "tp", "crps"))
    # the PIT is randomised differently, but is a histogram of the same size
    diag = gv.ver.diagnostics["ens"]["tp"]
    assert sum(diag["pit_hist"]) == sum(ref.diagnostics["ens"]["tp"]["pit_hist"])
    assert diag["rank_hist"] is not None and len(diag["rank_hist"]) == 10


def test_maps_average_the_cases_of_each_point(case: Path) -> None:
    truth, forecasts = _open(case)
    gv = verify_grid(truth, forecasts[:1] + forecasts[-1:], reference="raw", n_boot=10)
    maps = gv.maps
    assert maps["tp_crps"].dims == ("forecast", FP, "y", "x")
    assert list(maps["forecast"].values) == ["model", "raw"]
    assert {"latitude", "longitude"} <= set(maps.coords)
    with xr.open_dataset(case / "raw.nc") as r, xr.open_dataset(case / "analysis.nc") as a:
        err = np.abs(r["fc_tp"] - a["obs_tp"]).mean(FRT)
    np.testing.assert_allclose(maps["tp_crps"].sel(forecast="raw").values, err.values, rtol=1e-9)
    assert int(maps["tp_n"].sel(forecast="raw")[0, 0, 0]) == 5  # one run masked there
    skill = 1 - maps["tp_crps_all"].sel(forecast="model") / maps["tp_crps_all"].sel(forecast="raw")
    np.testing.assert_allclose(maps["tp_crpss_all"].sel(forecast="model"), skill, rtol=1e-9)
    assert np.isnan(maps["tp_crpss_all"].sel(forecast="raw")).all()


def test_cli_writes_scores_maps_and_report(case: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "verif"
    rc = main(
        [
            "verify",
            "--forecast",
            str(case / "run_parameters.nc"),
            "--forecast",
            str(case / "run_probabilities_tp.nc"),
            "--truth",
            str(case / "analysis.nc"),
            "--raw",
            str(case / "raw.nc"),
            "--out",
            str(out),
            "--n-boot",
            "20",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "run tp: distribution (censored_logistic" in text and "raw tp: point" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "maps.nc",
        "report.html",
        "scores.csv",
        "scores.json",
    ]
    doc = json.loads((out / "scores.json").read_text())
    assert doc["meta"]["kind"] == "grid" and doc["meta"]["reference"] == "raw"
    assert doc["meta"]["forecasts"] == {
        "run": [str(case / "run_parameters.nc"), str(case / "run_probabilities_tp.nc")],
        "raw": [str(case / "raw.nc")],
    }
    scores = pd.read_csv(out / "scores.csv")
    crpss = scores.query("method == 'run' and by == 'all' and metric == 'crpss'")["value"]
    assert float(crpss.iloc[0]) > 0.0
    html = (out / "report.html").read_text()
    assert "map of mean CRPS" in html and "map of CRPSS" in html
    from PIL import Image

    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 5
    for data in images:
        with Image.open(BytesIO(base64.b64decode(data))) as img:
            assert img.size[0] >= 400
    with xr.open_dataset(out / "maps.nc") as maps:
        assert maps["tp_crpss_all"].dims == ("forecast", "y", "x")


def test_analysis_as_cf_variable_in_other_units_on_a_time_axis(case: Path, tmp_path: Path) -> None:
    with xr.open_dataset(case / "analysis.nc") as a:
        obs = a["obs_tp"].load()
    valid = (obs[FRT] + obs[FP]).values.ravel()
    flat = obs.stack(t=(FRT, FP)).transpose("t", "y", "x").values / 1000.0  # metres
    keep = np.unique(valid, return_index=True)[1]
    ds = xr.Dataset(
        {
            "precip": (
                ("time", "y", "x"),
                flat[keep],
                {"standard_name": "precipitation_amount", "units": "m"},
            )
        },
        coords={"time": valid[keep], **{c: obs[c] for c in ("y", "x", "latitude", "longitude")}},
    )
    ds.to_netcdf(tmp_path / "analysis_m.nc")
    truth = grid_inputs.open_truth(tmp_path / "analysis_m.nc")
    assert list(truth.data_vars) == ["obs_tp"]
    fcs = [grid_inputs.open_forecast("raw", [case / "raw.nc"])]
    a = verify_grid(truth, fcs).ver.value("raw", "tp", "crps")
    b = verify_grid(grid_inputs.open_truth(case / "analysis.nc"), fcs).ver.value(
        "raw", "tp", "crps"
    )
    assert a == pytest.approx(b, rel=1e-9)


def test_products_in_user_units_are_scored_in_canonical_units(case: Path, tmp_path: Path) -> None:
    with xr.open_dataset(case / "run_members.nc") as ds:
        cm = ds.load()
    cm["tp"] = (cm["tp"] / 10.0).assign_attrs({**cm["tp"].attrs, "units": "cm"})
    cm.to_netcdf(tmp_path / "members_cm.nc")
    truth = grid_inputs.open_truth(case / "analysis.nc")
    scores = [
        verify_grid(truth, [grid_inputs.open_forecast("e", [p])]).ver.value("e", "tp", "crps")
        for p in (case / "run_members.nc", tmp_path / "members_cm.nc")
    ]
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)


@pytest.mark.parametrize("layout", ["regular", "point"])
def test_maps_on_other_layouts(tmp_path: Path, layout: str) -> None:
    from PIL import Image

    from probcast.verify import plots

    ds = forecast_grid((9, 11), 3, layout=layout)
    write_dataset(ds[["obs_tp"]], tmp_path / "a.zarr")  # Zarr stores read as NetCDF
    write_dataset(ds[["fc_tp"]], tmp_path / "raw.nc")
    write_dataset((ds[["fc_tp"]] * 0.8).assign_attrs(), tmp_path / "damped.nc")
    assert grid_inputs.is_grid(tmp_path / "a.zarr")
    truth = grid_inputs.open_truth(tmp_path / "a.zarr")
    fcs = [grid_inputs.open_forecast(n, [tmp_path / f"{n}.nc"]) for n in ("damped", "raw")]
    gv = verify_grid(truth, fcs, reference="raw", n_boot=10)
    grid = ("point",) if layout == "point" else ("latitude", "longitude")
    assert gv.maps["tp_crpss_all"].dims == ("forecast", *grid)
    for metric in ("crps", "crpss"):
        png = plots.grid_map(gv.maps, "tp", metric, reference="raw")
        assert png is not None
        with Image.open(BytesIO(png)) as img:
            assert img.size[0] >= 400


def _cli_error(args: list[str], capsys) -> str:
    assert main(["verify", *args]) == 1
    return capsys.readouterr().err


def test_grid_mismatch_is_a_clear_error(case: Path, tmp_path: Path, capsys) -> None:
    ds = forecast_grid((SHAPE[0], SHAPE[1] - 1), 6, lead_hours=(24.0, 48.0))
    write_dataset(ds[["obs_tp"]], tmp_path / "narrow.nc")
    shifted = xr.open_dataset(case / "analysis.nc").load()
    shifted["latitude"] = shifted["latitude"] + 0.01
    shifted.to_netcdf(tmp_path / "shifted.nc")
    out = tmp_path / "out"
    fc = ["--forecast", str(case / "run_members.nc"), "--out", str(out)]
    err = _cli_error([*fc, "--truth", str(tmp_path / "narrow.nc")], capsys)
    assert "run_members.nc" in err and "narrow.nc" in err and "different grids" in err
    assert "{'y': 12, 'x': 16}" in err and "{'y': 12, 'x': 15}" in err
    err = _cli_error([*fc, "--truth", str(tmp_path / "shifted.nc")], capsys)
    assert "latitude differs by up to 0.01" in err and "tolerance 0.0001" in err
    assert not out.exists()


def test_probabilities_alone_get_brier_scores(case: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p"
    args = ["--forecast", str(case / "run_probabilities_tp.nc"), "--truth"]
    rc = main(["verify", *args, str(case / "analysis.nc"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    scores = pd.read_csv(out / "scores.csv")
    assert scores.query("metric == 'brier_1'")["value"].notna().all()
    assert scores.query("metric == 'crps'")["value"].isna().all()  # no distribution: no CRPS


def test_an_analysis_without_values_is_a_clear_error(case: Path, tmp_path: Path, capsys) -> None:
    with xr.open_dataset(case / "analysis.nc") as a:
        empty = a.load()
    for name in empty.data_vars:
        empty[name] = empty[name] * np.nan
    empty.to_netcdf(tmp_path / "nan.nc")
    args = ["--forecast", str(case / "run_parameters.nc"), "--truth", str(tmp_path / "nan.nc")]
    err = _cli_error([*args, "--out", str(tmp_path / "o")], capsys)
    assert "nan.nc" in err and "missing" in err


def test_bad_inputs_are_clear_errors(case: Path, tmp_path: Path, capsys) -> None:
    with xr.open_dataset(case / "run_probabilities_tp.nc") as ds:
        bad = ds.load()
    bad[PROB][0, 0, 0, 0, 0] = 1.5
    bad.to_netcdf(tmp_path / "bad_probabilities_tp.nc")
    truth = ["--truth", str(case / "analysis.nc"), "--out", str(tmp_path / "o")]
    err = _cli_error(["--forecast", str(tmp_path / "bad_probabilities_tp.nc"), *truth], capsys)
    assert "bad_probabilities_tp.nc: tp probabilities: 1 probabilities outside [0, 1]" in err
    with xr.open_dataset(case / "analysis.nc") as a:
        later = a.load().assign_coords({FRT: a[FRT] + np.timedelta64(400, "D")})
    later.to_netcdf(tmp_path / "later.nc")
    err = _cli_error(
        [
            "--forecast",
            str(case / "raw.nc"),
            "--truth",
            str(tmp_path / "later.nc"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert "no forecast valid time" in err and "later.nc" in err
    (tmp_path / "empty.nc").write_bytes(b"")
    err = _cli_error(["--forecast", str(tmp_path / "empty.nc"), *truth], capsys)
    assert "empty.nc" in err
    assert main(["verify", "--forecast", str(case / "raw.nc"), *truth, "--by", "station"]) == 2


def test_station_netcdf_truth_and_raw_flag_for_tables(tmp_path: Path, capsys) -> None:
    from probcast.products.table_files import write_predictions
    from probcast.testing.verification import members_table, truth_table

    truth, mu, sigma = truth_table(n_stations=4, n_inits=6)
    write_predictions(truth, tmp_path / "truth.nc")
    members_table(truth, mu, sigma, n_members=5).to_parquet(tmp_path / "ens.parquet")
    args = [
        "verify",
        "--truth",
        str(tmp_path / "truth.nc"),
        "--forecast",
        f"ens={tmp_path / 'ens.parquet'}",
        "--out",
        str(tmp_path / "v"),
        "--n-boot",
        "5",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert "ens" in capsys.readouterr().out
    assert main([*args, "--raw", str(tmp_path / "ens.parquet")]) == 2
    assert "--raw is for a gridded --truth" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.realdata
def test_real_grid_icp_wrf_ensemble(mirror: Path, tmp_path: Path, capsys) -> None:
    """The three ICP WRF configurations as a 3-member product on the 501 x 601 HRAP grid."""
    from probcast.data import registry
    from probcast.data.prepare import converter

    ds = converter("icp-wrf-precip-grid")(registry.fetch("icp-wrf-precip-grid")).data
    names = ["fc_tp", "fc_tp_wrf2caps", "fc_tp_wrf4ncep"]
    members = xr.concat([ds[n] for n in names], dim="realization").rename("tp")
    members = members.assign_attrs(units="kg m-2").transpose("realization", ...)
    products = build_products(
        members.to_dataset(), products=["members", "probabilities"], n_members=3,
        thresholds={"tp": [1.0]},
    )  # fmt: skip
    for name, product in products.items():
        write_products(product, tmp_path / f"wrf_{name}.nc", min_keepbits=10)
    write_dataset(ds[["obs_tp"]], tmp_path / "stage2.nc")
    write_dataset(ds[["fc_tp"]], tmp_path / "wrf4ncar.nc")
    out = tmp_path / "verif"
    rc = main(["verify", "--forecast", str(tmp_path / "wrf_members.nc"),
               "--forecast", str(tmp_path / "wrf_probabilities_tp.nc"),
               "--truth", str(tmp_path / "stage2.nc"), "--raw", str(tmp_path / "wrf4ncar.nc"),
               "--out", str(out), "--n-boot", "50"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "scores.json").read_text())
    value = {(r["method"], r["metric"]): r["value"] for r in doc["scores"] if r["by"] == "all"}
    assert value[("raw", "n")] == 9 * 501 * 601
    assert value[("raw", "crps")] == pytest.approx(0.304, abs=0.002)  # the raw MAE (docs)
    assert 0.1 < value[("wrf", "crps")] < 0.4 and value[("wrf", "brier_1")] > 0
    assert len(doc["diagnostics"]["wrf"]["tp"]["rank_hist"]) == 4
    with xr.open_dataset(out / "maps.nc") as maps:
        assert maps["tp_crpss_all"].dims == ("forecast", "y", "x")
        assert maps["tp_crpss_all"].shape == (2, 501, 601)
    assert (out / "report.html").read_text().count("data:image/png") >= 6
