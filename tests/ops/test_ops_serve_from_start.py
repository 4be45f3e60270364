"""A cycle whose GRIB input holds amounts since the start: served and run as 6-h amounts.

ARPEGE's ``tp`` runs over 0-1 h, 0-2 h, ... 0-24 h; a pipeline of a 6-h model answered 503
("de-accumulate it first") and its cycle failed. Both now take the differences of the
file's steps (:mod:`probcast.predict.input_periods`).
"""

from __future__ import annotations

import shutil
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fastapi.testclient import TestClient
from opshelp import write_pipeline

from probcast.ingest.gridded import open_gridded
from probcast.ops import pipeline as pl
from probcast.ops.cycle import run_cycle
from probcast.ops.serve import create_app
from probcast.ops.state import StateStore

ARPEGE = "arpege-grib/arpege_PRECIP_NW_20180501000000.grib"
RUN = datetime(2018, 5, 1, 0)


@pytest.fixture
def pipe(mirror, tp6_grid_model, tmp_path):
    (tmp_path / "grids").mkdir()
    shutil.copy(mirror / ARPEGE, tmp_path / "grids" / f"{RUN:%Y%m%d%H}.grib")
    grid = {
        "input": "grids/{cycle:%Y%m%d%H}.grib",
        "products": {"output": "pred.nc", "percentiles": [50]},
    }
    return pl.load(write_pipeline(tmp_path, tp6_grid_model, **grid))


@pytest.mark.realdata
def test_served_as_six_hour_amounts(pipe, mirror):
    store = StateStore(pipe.state, pipe.name)
    ds = open_gridded(mirror / ARPEGE)
    point = {"latitude": float(ds.latitude[20]), "longitude": float(ds.longitude[30])}
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        body = {
            "cycle": pl.cycle_id(RUN),
            "points": [point],
            "lead_times": [3, 12],
            "quantiles": [0.5],
        }
        reply = c.post("/forecast", json=body)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
    assert answer["periods"] == {"tp": 6.0}
    rows = pd.DataFrame(answer["rows"]).set_index("lead_time")
    assert pd.isna(rows.loc[3.0, "tp_q0.5"])  # no 6-h amount ends 3 h into the run
    assert np.isfinite(rows.loc[12.0, "tp_q0.5"])


@pytest.mark.realdata
def test_a_cycle_runs_on_amounts_since_the_start(pipe, tmp_path):
    store = StateStore(pipe.state, pipe.name)
    result = run_cycle(pipe, RUN, store)
    assert result.status == "finished", result
    path = next((tmp_path / "published").rglob("*percentiles*.nc"))
    with xr.open_dataset(path) as out:
        var = next(str(v) for v in out.data_vars if "percentile" in out[v].dims)
        assert out[var].attrs["statistic_period"] == "PT6H"
        lead = out[var].forecast_period / np.timedelta64(1, "h")
        assert out[var].where(lead < 6).isnull().all()
        assert out[var].where(lead >= 6).notnull().any()
