"""``data build`` with ``output: {kind: zarr-grid}``: real NWP/ERA5 samples, hand-checked.

Truth is either the real ERA5 legacy NetCDF sample or a *synthetic* ARCO-ERA5 store
(``probcast.testing.arco``: real layout, values from a formula).
"""

from __future__ import annotations

import eccodes
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.ingest.gridded import open_gridded
from probcast.sources.build import build
from probcast.sources.config import parse_spec
from probcast.sources.errors import SourceError
from probcast.testing.arco import arco_values, write_arco_store

ANALYSES = ("msl", "10u")
DIMS = ("forecast_reference_time", "forecast_period", "latitude", "longitude")


def _grib_value(path, date, lat, lon, step=0):
    """The value of the message of ``date`` (YYYYMMDDHH) and ``step`` at a node, by ecCodes."""
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            stamp = f"{eccodes.codes_get(h, 'dataDate')}{eccodes.codes_get(h, 'dataTime'):04d}"
            if stamp[:10] == date and eccodes.codes_get(h, "endStep") == step:
                near = eccodes.codes_grib_find_nearest(h, lat, lon)[0]
                eccodes.codes_release(h)
                return near["value"]
            eccodes.codes_release(h)
    raise KeyError(date)


def _spec(mirror, store, end, **extra):
    g = mirror / "ecmwf-hres-grib1"
    data = {
        "nwp": {"source": "archive", "paths": [str(g / f"an_{v}_sfc.grib") for v in ANALYSES]},
        "truth": {"source": "arco-era5", "paths": str(store)},
        "variables": ["msl", "u10"],
        "period": {"start": "2016-09-25", "end": end},
        "lead_times": [0],
        "output": {"kind": "zarr-grid"},
    }  # fmt: skip
    return parse_spec({**data, **extra})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("arco") / "arco.zarr"
    write_arco_store(path, "2016-09-25", 96)
    return path


def test_arco_truth_on_model_grid_incremental(mirror, store, tmp_path):
    out = tmp_path / "out"
    first = build(_spec(mirror, store, "2016-09-25"), out)
    assert first.written == ["2016-09-25T00:00Z", "2016-09-25T12:00Z"]
    second = build(_spec(mirror, store, "2016-09-27"), out)
    assert second.skipped == first.written and len(second.written) == 4
    ds = open_gridded(out / "grid.zarr")
    assert ds.sizes["forecast_reference_time"] == 6 and ds["latitude"].size == 7
    assert pd.DatetimeIndex(ds["forecast_reference_time"].values).is_monotonic_increasing
    # Hand check at 50N 10W (a node of both grids), cycle 2016-09-26 12 UTC (hour 36).
    cell = ds.sel(latitude=50.0, longitude=-10.0, forecast_period=pd.Timedelta(0))
    cell = cell.sel(forecast_reference_time="2016-09-26T12")
    g = mirror / "ecmwf-hres-grib1"
    msl = _grib_value(g / "an_msl_sfc.grib", "2016092612", 50, -10)
    assert float(cell["fc_msl"]) == pytest.approx(msl)
    u10 = _grib_value(g / "an_10u_sfc.grib", "2016092612", 50, -10)
    assert float(cell["fc_u10"]) == pytest.approx(u10)
    lat, lon = np.array([50.0]), np.array([350.0])
    want = arco_values("mean_sea_level_pressure", lat, lon, np.array([36]))
    assert float(cell["obs_msl"]) == pytest.approx(want[0, 0])
    assert float(cell["obs_u10"]) == pytest.approx(5.0)
    assert ds["fc_msl"].attrs["units"] == "Pa" and ds["obs_u10"].attrs["units"] == "m s-1"


def test_resume_after_interrupted_append(mirror, store, tmp_path):
    out = tmp_path / "out"
    build(_spec(mirror, store, "2016-09-25"), out)
    z = xr.open_zarr(out / "grid.zarr", consolidated=False).load()
    # An append that was interrupted before the state was committed (a crash).
    late = z.isel(forecast_reference_time=[1]).assign_coords(
        forecast_reference_time=[np.datetime64("2016-09-26T00", "ns")]
    )
    late.drop_vars("valid_time").to_zarr(
        out / "grid.zarr", append_dim="forecast_reference_time", consolidated=False
    )
    again = build(_spec(mirror, store, "2016-09-26"), out)
    assert again.written == ["2016-09-26T00:00Z", "2016-09-26T12:00Z"]
    ds = open_gridded(out / "grid.zarr")
    frt = pd.DatetimeIndex(ds["forecast_reference_time"].values)
    assert frt.is_unique and len(frt) == 4
    g = mirror / "ecmwf-hres-grib1"
    value = ds["fc_msl"].sel(forecast_reference_time="2016-09-26T00", latitude=60.0, longitude=0.0)
    msl = _grib_value(g / "an_msl_sfc.grib", "2016092600", 60, 0)
    assert float(value.squeeze()) == pytest.approx(msl)


def test_era5_netcdf_truth_bilinear(mirror, tmp_path):
    """Real ERA5 (legacy NetCDF, 0.2 deg) onto a synthetic 0.5-degree model grid."""
    era5 = mirror / "era5-legacy-netcdf" / "test_data_20180101.nc"
    lat, lon = np.array([42.0, 42.5, 43.0]), np.array([-101.0, -100.5, -100.0])
    shape = (1, 2, 3, 3)
    nwp = xr.Dataset(
        {
            name: (DIMS, np.full(shape, v), {"units": "m s**-1"})
            for name, v in (("u10", 3.0), ("v10", 4.0))
        },
        coords={
            "forecast_reference_time": [np.datetime64("2018-01-02T06", "ns")],
            "forecast_period": pd.to_timedelta([0, 6], unit="h"),
            "latitude": lat, "longitude": lon,
        },
    )  # fmt: skip
    nwp.to_netcdf(tmp_path / "run.nc")
    spec = parse_spec(
        {
            "nwp": {"source": "archive", "paths": str(tmp_path / "run.nc")},
            "truth": {"source": "era5", "paths": str(era5)},
            "variables": ["u10", "ws10"],
            "period": {"start": "2018-01-02", "end": "2018-01-02"},
            "lead_times": [0, 6],
            "output": {"kind": "zarr-grid", "method": "bilinear"},
        }
    )
    build(spec, tmp_path / "out")
    ds = open_gridded(tmp_path / "out" / "grid.zarr")
    raw = xr.open_dataset(era5).sel(time="2018-01-02T12")["u10"]
    node = float(raw.sel(latitude=42.0, longitude=-101.0, method="nearest"))
    cell = ds.isel(forecast_reference_time=0).sel(forecast_period=pd.Timedelta("6h"))
    at_node = float(cell["obs_u10"].sel(latitude=42.0, longitude=-101.0))
    assert at_node == pytest.approx(node, abs=1e-4)
    # 42.5N 100.5W lies between 42.4/42.6 and 100.6/100.4W: the mean of four nodes.
    four = raw.sel(latitude=[42.4, 42.6], longitude=[-100.6, -100.4], method="nearest")
    got = float(cell["obs_u10"].sel(latitude=42.5, longitude=-100.5))
    assert got == pytest.approx(float(four.mean()), abs=1e-4)
    assert float(cell["fc_ws10"].sel(latitude=42.5, longitude=-100.5)) == pytest.approx(5.0)


def test_spec_errors(mirror, store):
    with pytest.raises(SourceError, match="output: expected"):
        _spec(mirror, store, "2016-09-25", output={"kind": "csv"})
    with pytest.raises(SourceError, match="needs gridded truth"):
        _spec(mirror, store, "2016-09-25", truth={"source": "isd", "paths": "x.gz"})
    with pytest.raises(SourceError, match=r"output\.method"):
        _spec(mirror, store, "2016-09-25", output={"kind": "zarr-grid", "method": "cubic"})


@pytest.mark.slow
def test_train_on_the_grid(mirror, store, tmp_path):
    from probcast.cli import main

    build(_spec(mirror, store, "2016-09-30"), tmp_path / "out")
    argv = [
        "train", "--config=tiny", "--config.tracking.backend=none", f"--workdir={tmp_path / 'run'}",
        f"--config.data.path={tmp_path / 'out' / 'grid.zarr'}",
        "--config.train.epochs=1", "--config.features.neighbourhood=",
    ]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "run" / "config.json").exists()


def test_area_crops_the_model_grid(mirror, store, tmp_path):
    """``area`` cuts the written grid to the model's points inside it (no margin)."""
    spec = _spec(mirror, store, "2016-09-25", area=[60, -10, 50, 0])
    result = build(spec, tmp_path / "out")
    ds = open_gridded(tmp_path / "out" / "grid.zarr")
    assert ds["latitude"].values.tolist() == [60.0, 50.0]
    assert ds["longitude"].values.tolist() == [-10.0, 0.0]
    assert result.summary()["area"] == [60.0, -10.0, 50.0, 0.0]
    g = mirror / "ecmwf-hres-grib1"
    cell = ds["fc_msl"].sel(forecast_reference_time="2016-09-25T12", latitude=50.0, longitude=0.0)
    msl = _grib_value(g / "an_msl_sfc.grib", "2016092512", 50, 0)
    assert float(cell.squeeze()) == pytest.approx(msl)


def test_area_without_grid_points_is_an_error(mirror, store, tmp_path):
    spec = _spec(mirror, store, "2016-09-25", area=[-40, 100, -50, 110])
    with pytest.raises(SourceError, match=r"area: .* holds none of the model grid's points"):
        build(spec, tmp_path / "out")
    assert not (tmp_path / "out" / "grid.zarr").exists()


@pytest.mark.parametrize("kwargs", [{"workers": 2}, {"scheduler": "tcp://127.0.0.1:1"}])
def test_parallel_grid_build_is_refused(mirror, store, tmp_path, kwargs):
    with pytest.raises(SourceError, match="zarr-grid is built one cycle at a time"):
        build(_spec(mirror, store, "2016-09-25"), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_workers_with_zarr_grid(mirror, store, tmp_path, capsys):
    import json

    from probcast.cli import main

    g = mirror / "ecmwf-hres-grib1"
    spec = {
        "nwp": {"source": "archive", "paths": [str(g / "an_msl_sfc.grib")]},
        "truth": {"source": "arco-era5", "paths": str(store)},
        "variables": ["msl"],
        "period": {"start": "2016-09-25", "end": "2016-09-25"},
        "lead_times": [0],
        "output": {"kind": "zarr-grid"},
    }
    (tmp_path / "b.yaml").write_text(json.dumps(spec))
    argv = ["data", "build", "--config", str(tmp_path / "b.yaml"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "without --workers/--scheduler" in err


def test_cli_reports_a_grid_build_and_its_fields_without_values(mirror, store, tmp_path, capsys):
    import json

    from probcast.cli import main

    g = mirror / "ecmwf-hres-grib1"
    spec = {
        "nwp": {"source": "archive", "paths": [str(g / "an_msl_sfc.grib")]},
        "truth": {"source": "arco-era5", "paths": str(store)},
        "variables": ["msl", "u10"],  # the archive holds no 10 m wind
        "period": {"start": "2016-09-25", "end": "2016-09-25"},
        "lead_times": [0],
        "output": {"kind": "zarr-grid"},
    }
    (tmp_path / "b.yaml").write_text(json.dumps(spec))
    argv = ["data", "build", "--config", str(tmp_path / "b.yaml"), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reference times in grid.zarr: 2" in out and "table.parquet" not in out
    assert "no value in any cycle written: fc_u10" in out
