"""A grid point gets the forecast, and the source, of the same row predicted as a station.

Audit (F2): with ``fc_td2m`` (an extra predictor without missing values in training) NaN at
one point, the grid path imputed it and predicted with the network (P(tp > 0) 0.359) where
the station path fell back to EMOS (0.464); with ``fc_t2m`` NaN at one point, every target
was NaN there on the grid while the station path gave the other targets their fallbacks.
Both paths now apply the same per-row, per-target rules (:func:`probcast.model.fallback.
plan_rows`) and the grid products record each point's source in ``<var>_source``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.align.points import grid_to_table, open_grid
from probcast.cli import main
from probcast.ingest.gridded import write_dataset
from probcast.model.artefact import load
from probcast.predict import gridded
from probcast.predict.grid_checks import GridPredictError
from probcast.predict.request import PredictRequest
from probcast.predict.station import predict_stations
from probcast.products.table import SOURCES
from probcast.testing.grids import forecast_grid
from probcast.testing.products import assert_probabilities_as_table, flat

SHAPE = (12, 14)
TARGETS = ("t2m", "tp")
PCT = (10.0, 50.0, 90.0)
THRESHOLDS = {"tp": (0.0, 1.0), "t2m": (280.0,)}
NO_TD2M, NO_T2M, NO_TP = (5, 5), (2, 9), (9, 3)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A t2m + tp model (extra predictor fc_td2m, EMOS blend) and a run with missing values."""
    root = tmp_path_factory.mktemp("gridcons")
    ds = forecast_grid(SHAPE, 9, variables=("t2m", "td2m", "tp"))
    write_dataset(ds.isel(forecast_reference_time=slice(0, 7)), root / "train.nc")
    args = [f"--workdir={root / 'model'}", f"--config.data.path={root / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.data.targets=t2m,tp",
                 "--config.train.epochs=1", "--config.train.blend_emos=true"]) == 0  # fmt: skip
    run = ds.isel(forecast_reference_time=slice(7, 9))
    run = run.drop_vars([v for v in run.data_vars if str(v).startswith("obs_")])
    for field, (y, x) in (("fc_td2m", NO_TD2M), ("fc_t2m", NO_T2M), ("fc_tp", NO_TP)):
        run[field][:, :, y, x] = np.nan
    write_dataset(run, root / "run.nc")
    return root


def _grid(case: Path, tmp: Path) -> dict[str, Path]:
    request = PredictRequest(
        case / "model", case / "run.nc", tmp / "out" / "r.nc", percentiles=PCT,
        thresholds=THRESHOLDS, inflevel=1.0,
    )  # fmt: skip
    return gridded.predict_grid(request)


def _station(case: Path) -> dict:
    """The station path on the grid's rows (every point, C order over run, period, y, x)."""
    model = load(case / "model")
    grid = json.loads((case / "model" / "features.json").read_text())["grid"]
    ds = open_grid(case / "run.nc")
    table = grid_to_table(ds, neighbourhood=grid["neighbourhood"], stats=grid["stats"], required=())
    levels = [p / 100 for p in PCT]
    return predict_stations(model, table, quantiles=levels, thresholds=THRESHOLDS).table


def test_every_point_gets_the_station_rows_forecast_and_source(case: Path, tmp_path: Path) -> None:
    paths = _grid(case, tmp_path)
    station = _station(case)
    with xr.open_dataset(paths["percentiles"]) as pct:
        for var in TARGETS:
            codes = pct[f"{var}_source"].transpose("forecast_reference_time", ...).values
            labels = np.asarray(SOURCES, dtype=object)[codes.ravel()]
            np.testing.assert_array_equal(labels, station[f"{var}_source"].to_numpy())
            got = flat(pct[var], "percentile")
            for j, p in enumerate(PCT):
                want = station[f"{var}_q{p / 100:g}"].to_numpy()
                np.testing.assert_allclose(got[j], want, rtol=2e-6, atol=1e-5, equal_nan=True)
    assert_probabilities_as_table(paths, station, THRESHOLDS)
    # the audit's point: fc_td2m missing -> EMOS for both targets, not the network
    at = np.ravel_multi_index((0, 0, *NO_TD2M), (2, 1, *SHAPE))
    assert station["t2m_source"].iloc[at] == station["tp_source"].iloc[at] == "emos"


def test_a_missing_raw_forecast_takes_only_its_own_target(case: Path, tmp_path: Path) -> None:
    paths = _grid(case, tmp_path)
    with xr.open_dataset(paths["percentiles"]) as pct:
        t2m, tp = pct["t2m"][..., NO_T2M[0], NO_T2M[1]], pct["tp"][..., NO_T2M[0], NO_T2M[1]]
        assert t2m.isnull().all() and tp.notnull().all()
        src = {v: pct[f"{v}_source"][..., NO_T2M[0], NO_T2M[1]].values.ravel() for v in TARGETS}
    assert set(src["t2m"]) == {SOURCES.index("missing")}
    assert set(src["tp"]) == {SOURCES.index("emos")}
    with xr.open_dataset(paths["parameters"]) as par:
        assert par["tp_loc"][..., NO_TP[0], NO_TP[1]].isnull().all()
        assert par["t2m_loc"][..., NO_TP[0], NO_TP[1]].notnull().all()


def test_sources_are_cf_flag_variables_of_the_products(case: Path, tmp_path: Path) -> None:
    paths = _grid(case, tmp_path)
    for name, path in paths.items():
        with xr.open_dataset(path) as ds:
            described = {
                str(n): ds[n].attrs["ancillary_variables"]
                for n in ds.data_vars
                if "ancillary_variables" in ds[n].attrs
            }
            if name == "parameters":  # <var>_<param> fields only: every <var>_* is read as one
                assert not described and not [n for n in ds.data_vars if "source" in str(n)]
                continue
            assert described, name
            for flag in set(described.values()):
                attrs = ds[flag].attrs
                assert ds[flag].dtype == np.int8
                assert list(attrs["flag_values"]) == list(range(len(SOURCES)))
                assert attrs["flag_meanings"] == " ".join(SOURCES)
                assert "threshold" not in ds[flag].dims and "percentile" not in ds[flag].dims
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / "cf.json"
    ComplianceChecker.run_checker(
        str(paths["percentiles"]), ["cf:1.8"], 0, "normal", output_filename=str(report),
        output_format="json",
    )  # fmt: skip
    result = json.loads(report.read_text())["cf:1.8"]
    failures = [c["name"] for c in result["high_priorities"] if c["value"][0] < c["value"][1]]
    assert not failures


def test_a_grid_no_point_of_which_the_network_can_predict_is_refused(
    case: Path, tmp_path: Path
) -> None:
    # as a station table none of whose rows the network can predict
    run = open_grid(case / "run.nc").load()
    run["fc_td2m"][..., : SHAPE[1] // 2] = np.nan
    run["fc_t2m"][..., SHAPE[1] // 2 :] = np.nan
    path = write_dataset(run, tmp_path / "holes.nc")
    request = PredictRequest(case / "model", path, tmp_path / "holes" / "r.nc")
    with pytest.raises(GridPredictError, match=r"holes.nc: no point of the grid has every input"):
        gridded.predict_grid(request)
    assert not (tmp_path / "holes").exists() or not list((tmp_path / "holes").glob("r_*"))
