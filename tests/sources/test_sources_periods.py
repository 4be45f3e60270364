"""``data build`` records tp's period (accumulation_hours) and refuses to mix two periods."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast import periods
from probcast.ingest.tables import read_table
from probcast.sources.cli import main
from probcast.sources.errors import SourceError
from probcast.sources.grid_store import append_cycle
from probcast.testing import archives as synthetic

RUNS = list(pd.date_range("2025-01-01", periods=2, freq="12h", tz="UTC"))


@pytest.fixture
def spec(tmp_path):
    folder = tmp_path / "nwp"
    synthetic.write_archive(folder, RUNS, [0, 6, 12])
    obs = tmp_path / "obs.csv"
    obs.write_text(
        "station,time,latitude,longitude,altitude,t2m,tp,tp_hours\n"
        "A,2025-01-01T12:00,50.0,5.0,250,272.0,2.5,6\n"
    )
    return {
        "nwp": {"source": "archive", "paths": str(folder / "*.grib")},
        "truth": {"source": "table", "paths": [str(obs)]},
        "variables": ["t2m", "tp"],
        "period": {"start": "2025-01-01", "end": "2025-01-01T00"},
        "cycles": [0, 12],
        "lead_times": [6, 12],
        "accumulation_hours": 6,
    }


def _build(spec, tmp_path, out) -> int:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(spec))
    return main(["--config", str(cfg), "--out", str(out)])


def test_the_table_records_the_accumulation_period(spec, tmp_path):
    out = tmp_path / "out"
    assert _build(spec, tmp_path, out) == 0
    assert periods.of(read_table(out / "table.parquet").attrs, "t") == {"tp": 6.0}
    part = next(out.glob("init_date=*/cycle_*.parquet"))
    assert periods.of(pd.read_parquet(part).attrs, "p") == {"tp": 6.0}
    spec["variables"] = ["t2m"]
    assert _build(spec, tmp_path, tmp_path / "t2m") == 0
    assert periods.of(read_table(tmp_path / "t2m" / "table.parquet").attrs, "t") == {}


def test_a_changed_period_into_the_same_folder_is_refused(spec, tmp_path, capsys):
    # the earlier cycles are kept (skipped), so one table would mix 6-h and 12-h amounts
    out = tmp_path / "out"
    assert _build(spec, tmp_path, out) == 0
    spec["accumulation_hours"] = 12
    spec["period"]["end"] = "2025-01-01T12"
    assert _build(spec, tmp_path, out) == 1
    err = capsys.readouterr().err
    assert "tp is over 6 h, but this spec's accumulation_hours is 12" in err
    assert "new folder" in err and err.count("\n") == 1
    assert len(list(out.glob("init_date=*/cycle_*.parquet"))) == 1  # nothing added


def _cycle(hours: float | None, day: str = "2025-01-01") -> xr.Dataset:
    ds = xr.Dataset(
        {"fc_tp": (("forecast_reference_time", "forecast_period", "y"), np.ones((1, 1, 3)))},
        coords={
            "forecast_reference_time": [np.datetime64(day, "ns")],
            "forecast_period": [np.timedelta64(6, "h")],
            "latitude": ("y", [1.0, 2.0, 3.0]),
            "longitude": ("y", [1.0, 2.0, 3.0]),
        },
    )
    ds = ds.assign_coords(valid_time=ds["forecast_reference_time"] + ds["forecast_period"])
    return periods.recorded(ds, {"tp": hours} if hours else {})


def test_a_grid_store_keeps_one_period(tmp_path):
    store = tmp_path / "grid.zarr"
    state = append_cycle(store, _cycle(6.0), "a", {"cycles": []}, "g")
    state = append_cycle(store, _cycle(6.0, "2025-01-02"), "b", state, "g")
    assert periods.of(xr.open_zarr(store).attrs, "s") == {"tp": 6.0}
    other = _cycle(24.0, "2025-01-03")
    with pytest.raises(SourceError, match="holds statistic periods"):
        append_cycle(store, other, "c", state, "g")
