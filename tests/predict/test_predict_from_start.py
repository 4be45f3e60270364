"""Amounts accumulated since the start of the forecast are predicted as the model's period.

ECMWF and ARPEGE GRIB files hold ``tp`` over 0-1 h, 0-2 h, ...: a model of 6-h amounts was
refused such a file ("de-accumulate it first"). Prediction now takes the difference of the
file's steps itself (:mod:`probcast.predict.input_periods`).
"""

from __future__ import annotations

import logging

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast import periods
from probcast.cli import main
from probcast.ingest.gridded import open_gridded
from probcast.sources.deaccum import grid_from_start

ARPEGE = "arpege-grib/arpege_PRECIP_NW_20180501000000.grib"  # tp 0-1 h, 0-2 h, ..., 0-24 h
ECMWF = "ecmwf-hres-grib1/tp_sfc.grib"  # tp since the start at steps 0 and 120 h


def _since_start(totals: list[float], steps: list[float]) -> xr.DataArray:
    values = np.asarray(totals, dtype="float64")[None, :, None]
    fp = pd.to_timedelta(steps, unit="h")
    return xr.DataArray(
        np.repeat(values, 2, axis=2),
        dims=("forecast_reference_time", "forecast_period", "x"),
        coords={"forecast_period": fp},
        name="fc_tp",
        attrs={"units": "kg m-2"},
    )


def test_differences_of_the_steps_one_period_apart():
    da = _since_start([0.0, 1.0, 3.0, 4.0, 7.0, 6.98, 5.0], [0, 3, 6, 9, 12, 15, 18])
    out = grid_from_start(da, 6.0, "f.grib")[0, :, 0].values
    # 0 and 3 h have no step 6 h before; 6 h is the amount since the start itself;
    # 15 h: 6.98 - 4 = 2.98; 18 h: 5 - 7 = -2 is inconsistent (NaN), packing noise is 0
    np.testing.assert_allclose(out, [np.nan, np.nan, 3.0, 3.0, 4.0, 2.98, np.nan])
    noise = _since_start([2.0, 1.98], [6, 12])
    np.testing.assert_allclose(grid_from_start(noise, 6.0, "f")[0, :, 0].values, [2.0, 0.0])
    assert grid_from_start(da, 6.0, "f").attrs == da.attrs


def test_lazy_input_stays_lazy():
    da = _since_start([0.0, 1.0, 3.0], [0, 6, 12]).chunk({"forecast_period": 1})
    out = grid_from_start(da, 6.0, "f")
    assert isinstance(out.data, dask.array.Array)
    np.testing.assert_allclose(out[0, :, 0].values, [np.nan, 1.0, 2.0])


def test_no_step_one_period_apart_is_refused():
    da = _since_start([0.0, 5.0], [0, 120])
    with pytest.raises(ValueError, match=r"f.grib: fc_tp is accumulated since the start .*"
                       r"steps 0, 120 h.*no 6-h amount can be derived"):  # fmt: skip
        grid_from_start(da, 6.0, "f.grib")


@pytest.mark.realdata
def test_a_file_of_amounts_since_the_start_is_predicted(mirror, tp6_grid_model, tmp_path, caplog):
    from probcast.model.artefact import load
    from probcast.predict.input_periods import to_model_periods

    src = mirror / ARPEGE
    ds = open_gridded(src)
    assert periods.from_start(ds.attrs) == ["tp"]
    model = load(tp6_grid_model)
    with caplog.at_level(logging.WARNING, "probcast.sources.deaccum"):
        got = to_model_periods(model, ds, str(src))
    assert "steps 1, 2, 3, 4, 5 h have no step 6 h before them" in caplog.text
    assert periods.of(got.attrs, "x") == {"tp": 6.0} and not periods.unfixed(got.attrs, "x")
    assert periods.FROM_START not in got.attrs
    model.check_periods(got, str(src))  # no error now
    h = pd.to_timedelta
    want = ds.fc_tp.sel(forecast_period=h("12h")) - ds.fc_tp.sel(forecast_period=h("6h"))
    np.testing.assert_allclose(got.fc_tp.sel(forecast_period=h("12h")), want.clip(min=0), atol=1e-6)
    np.testing.assert_array_equal(
        got.fc_tp.sel(forecast_period=h("6h")), ds.fc_tp.sel(forecast_period=h("6h"))
    )
    assert got.fc_tp.sel(forecast_period=h("3h")).isnull().all()
    assert "tp" in periods.unfixed(ds.attrs, "x")  # the input is left as it was

    out = tmp_path / "p.nc"
    rc = main(["predict", f"--model={tp6_grid_model}", f"--input={src}", f"--output={out}",
               "--percentiles=50"])  # fmt: skip
    assert rc == 0
    pct = xr.open_dataset(tmp_path / "p_percentiles.nc")
    var = next(v for v in pct.data_vars if "tp" in str(v) and "percentile" in pct[v].dims)
    assert pct[var].attrs["statistic_period"] == "PT6H"
    lead = pct[var].forecast_period / np.timedelta64(1, "h")
    early = pct[var].where(lead < 6)
    late = pct[var].where(lead >= 6)
    assert int(early.notnull().sum()) == 0 and int(late.notnull().sum()) > 0


@pytest.mark.realdata
def test_a_file_with_no_step_one_period_before_another_is_refused(
    mirror, tp6_grid_model, tmp_path, capsys
):
    src = mirror / ECMWF
    assert periods.from_start(open_gridded(src).attrs) == ["tp"]
    out = tmp_path / "p.nc"
    capsys.readouterr()
    rc = main(["predict", f"--model={tp6_grid_model}", f"--input={src}", f"--output={out}"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and f"{src}: fc_tp is accumulated since the start" in last, last
    assert "steps 0, 120 h" in last and "no 6-h amount can be derived" in last
    assert not out.parent.exists() or not list(out.parent.glob("p_*"))
