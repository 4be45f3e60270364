"""open_gridded / write_dataset: real format samples and synthetic NetCDF/Zarr files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.ingest.gridded import GriddedReadError, open_gridded, write_dataset

FRT, FP = "forecast_reference_time", "forecast_period"
LL = ("latitude", "longitude")
YX = ("y", "x")
slow = pytest.mark.slow

# file -> (canonical fields, spatial dims, realization?) or the error it must raise
SAMPLES: list = [
    ("arpege-grib/arpege_2m_NW_20180501000000.grib", {"fc_t2m", "fc_td2m"}, LL, False),
    pytest.param(
        "arpege-grib/arpege_10m_NW_20180501000000.grib",
        {"fc_u10", "fc_v10", "fc_ws10"},
        LL,
        False,
        marks=slow,
    ),
    ("arpege-grib/arpege_PRECIP_NW_20180501000000.grib", {"fc_tp"}, LL, False),
    pytest.param("era5-uk-t2m/era5-2mt-2019-03-uk.grib", {"fc_t2m"}, LL, False, marks=slow),
    ("grib-samples/fields_with_missing_values.grib", {"fc_t2m"}, LL, False),
    ("grib-samples/forecast_monthly_ukmo.grib", {"fc_t2m"}, LL, True),
    ("grib-samples/reduced_gg.grib", {"fc_u10"}, ("point",), False),
    ("grib-samples/regular_gg_sfc.grib", {"fc_u10"}, LL, False),
    ("grib-samples/step_60m.grib", {"fc_t2m"}, LL, False),
    ("nwp-netcdf-samples/gfs_0p25.nc", {"fc_t2m", "fc_ws10", "fc_tcc"}, LL, False),
    ("nwp-netcdf-samples/hrrr_hourly.nc", {"fc_t2m", "fc_ws10", "fc_tcc"}, YX, False),
    ("nwp-netcdf-samples/nam_12km.nc", {"fc_t2m", "fc_ws10", "fc_tcc"}, YX, False),
    ("nwp-netcdf-samples/rap.nc", {"fc_t2m", "fc_ws10", "fc_tcc"}, YX, False),
]
FAILING = [
    ("grib-samples/era5-levels-corrupted.grib", "corrupted or truncated GRIB: message 1"),
    ("grib-samples/era5-levels-members.grib", "no recognisable variables (found ['t', 'z'])"),
    ("grib-samples/lambert_grid.grib", "no recognisable variables (found ['nlwrs'])"),
    ("grib-samples/multi_param_on_multi_dims.grib", "no recognisable variables"),
    ("grib-samples/regular_ll_sfc.grib", "no recognisable variables (found ['skt'])"),
    ("grib-samples/t_analysis_and_fc_0.grib", "no recognisable variables (found ['t'])"),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("rel", "fields", "spatial", "members"), SAMPLES)
def test_format_sample_opens(mirror: Path, rel: str, fields: set, spatial: tuple, members: bool):
    ds = open_gridded(mirror / rel)
    assert set(ds.data_vars) == fields
    lead = (FRT, FP, "realization") if members else (FRT, FP)
    for name in fields:
        assert ds[name].dims == (*lead, *spatial)
        assert ds[name].attrs["units"] and ds[name].attrs["standard_name"]
        assert ds[name].dtype == np.float64
    assert ds[FP].dtype.kind == "m" and ds[FRT].dtype.kind == "M"
    np.testing.assert_array_equal(ds["valid_time"], ds[FRT] + ds[FP])
    assert ds["latitude"].attrs is not None and "longitude" in ds.coords


@pytest.mark.realdata
@pytest.mark.parametrize(("rel", "message"), FAILING)
def test_format_sample_fails_clearly(mirror: Path, rel: str, message: str):
    with pytest.raises(GriddedReadError) as err:
        open_gridded(mirror / rel)
    assert str(mirror / rel) in str(err.value)
    assert message in str(err.value)


@pytest.mark.realdata
def test_units_are_converted(mirror: Path):
    ds = open_gridded(mirror / "nwp-netcdf-samples/gfs_0p25.nc")
    raw = xr.open_dataset(mirror / "nwp-netcdf-samples/gfs_0p25.nc")
    assert raw["tcdc"].attrs["units"] == "percent"
    np.testing.assert_allclose(ds["fc_tcc"].values.ravel(), raw["tcdc"].values.ravel() / 100)
    assert ds["fc_tcc"].attrs["units"] == "1"
    assert ds[FRT].values[0] == np.datetime64("2019-05-15T00:00")


@pytest.mark.realdata
def test_grib_ensemble_and_missing_values(mirror: Path):
    ds = open_gridded(mirror / "grib-samples/forecast_monthly_ukmo.grib")
    assert ds.sizes["realization"] > 1
    miss = open_gridded(mirror / "grib-samples/fields_with_missing_values.grib")
    assert miss["fc_t2m"].isnull().any() and miss["fc_t2m"].notnull().any()


@pytest.mark.realdata
def test_lambert_keep_unknown_builds_grid_mapping(mirror: Path):
    ds = open_gridded(mirror / "grib-samples/lambert_grid.grib", keep_unknown=True)
    assert ds["fc_nlwrs"].dims == (FRT, FP, "y", "x")
    gm = ds["fc_nlwrs"].attrs["grid_mapping"]
    assert ds[gm].attrs["grid_mapping_name"] == "lambert_conformal_conic"
    assert ds["latitude"].dims == ("y", "x")


@pytest.mark.realdata
def test_obs_role_uses_valid_time(mirror: Path):
    ds = open_gridded(mirror / "nwp-netcdf-samples/rap.nc", role="obs", variables=["t2m"])
    assert list(ds.data_vars) == ["obs_t2m"] and ds["obs_t2m"].dims == ("time", "y", "x")
    assert ds["time"].values[1] == np.datetime64("2019-05-15T01:00")


def thredds_like(path: Path, units: str = "degC", **extra: object) -> Path:
    """A THREDDS/NCSS-style file: reftime scalar, valid time axis, Lambert grid_mapping."""
    times = pd.date_range("2024-01-01T06", periods=3, freq="3h")
    data = np.arange(3 * 2 * 4, dtype="float32").reshape(3, 2, 4)
    ds = xr.Dataset(
        {
            "Temperature_height_above_ground": (
                ("time", "y", "x"),
                data,
                {"units": units, "grid_mapping": "LambertConformal_Projection"},
            ),
            "LambertConformal_Projection": (
                (),
                0,
                {"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": 25.0},
            ),
            **extra,
        },
        coords={
            "time": ("time", times.to_numpy(), {"standard_name": "time"}),
            "reftime": (
                (),
                np.datetime64("2024-01-01T00:00", "ns"),
                {"standard_name": "forecast_reference_time"},
            ),
            "y": ("y", [0.0, 3000.0]),
            "x": ("x", [0.0, 3000.0, 6000.0, 9000.0]),
            "latitude": (("y", "x"), np.full((2, 4), 40.0)),
            "longitude": (("y", "x"), np.linspace(-100, -99, 8).reshape(2, 4)),
        },
    )
    ds.to_netcdf(path)
    return path


def test_thredds_names_reftime_and_grid_mapping(tmp_path: Path):
    ds = open_gridded(thredds_like(tmp_path / "t.nc"))
    assert list(ds.data_vars) == ["fc_t2m"]
    np.testing.assert_allclose(ds["fc_t2m"].values[0, 0, 0, 0], 273.15)
    assert list(ds[FP].values) == [np.timedelta64(h, "h") for h in (6, 9, 12)]
    assert ds["fc_t2m"].attrs["grid_mapping"] == "LambertConformal_Projection"
    assert ds["LambertConformal_Projection"].attrs["grid_mapping_name"] == "lambert_conformal_conic"
    assert ds["fc_t2m"].attrs["standard_name"] == "air_temperature"


def test_unconvertible_units_name_file_and_variable(tmp_path: Path):
    path = thredds_like(tmp_path / "bad_units.nc", units="furlongs")
    with pytest.raises(GriddedReadError, match=r"bad_units.nc") as err:
        open_gridded(path)
    assert "Temperature_height_above_ground" in str(err.value) and "furlongs" in str(err.value)


def test_requested_variable_missing(tmp_path: Path):
    path = thredds_like(tmp_path / "t.nc")
    with pytest.raises(GriddedReadError, match=r"t.nc: requested variable\(s\) \['tp'\]"):
        open_gridded(path, variables=["t2m", "precip"])
    assert list(open_gridded(path, variables=["2t"]).data_vars) == ["fc_t2m"]


def test_missing_unknown_and_truncated_files(tmp_path: Path):
    with pytest.raises(GriddedReadError, match=r"nope.nc: file not found"):
        open_gridded(tmp_path / "nope.nc")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GriddedReadError, match=r"notes.txt: unknown format"):
        open_gridded(tmp_path / "notes.txt")
    good = thredds_like(tmp_path / "good.nc").read_bytes()
    (tmp_path / "cut.nc").write_bytes(good[: len(good) // 2])
    with pytest.raises(GriddedReadError, match=r"cut.nc: cannot read as netcdf4 \(truncated"):
        open_gridded(tmp_path / "cut.nc")


def test_no_recognisable_variable(tmp_path: Path):
    xr.Dataset(
        {"foo": (("time", "x"), np.zeros((2, 3)), {"units": "1"})},
        coords={"time": pd.date_range("2024", periods=2)},
    ).to_netcdf(tmp_path / "f.nc")
    with pytest.raises(
        GriddedReadError, match=r"f.nc: no recognisable variables \(found \['foo'\]"
    ):
        open_gridded(tmp_path / "f.nc")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_write_roundtrip_is_atomic(tmp_path: Path, suffix: str):
    ds = open_gridded(thredds_like(tmp_path / "t.nc"))
    out = write_dataset(ds, tmp_path / "sub" / f"canon{suffix}")
    assert [p.name for p in out.parent.iterdir()] == [f"canon{suffix}"]
    back = open_gridded(out)
    xr.testing.assert_allclose(back["fc_t2m"], ds["fc_t2m"])
    assert back["fc_t2m"].attrs["grid_mapping"] == "LambertConformal_Projection"
    write_dataset(ds.isel({FP: [0]}), out)  # overwrite in place
    assert open_gridded(out).sizes[FP] == 1
    with pytest.raises(ValueError, match=r"unsupported suffix"):
        write_dataset(ds, tmp_path / "x.csv")


def test_netcdf3_and_analysis_without_reference(tmp_path: Path):
    times = pd.date_range("2024-03-01", periods=4, freq="6h")
    ds = xr.Dataset(
        {"msl": (("time", "lat", "lon"), np.full((4, 2, 3), 1013.0), {"units": "hPa"})},
        coords={"time": times, "lat": [50.0, 51.0], "lon": [0.0, 1.0, 2.0]},
    )
    ds.to_netcdf(tmp_path / "a.nc", engine="scipy")
    fc = open_gridded(tmp_path / "a.nc")
    assert fc["fc_msl"].dims == (FRT, FP, "latitude", "longitude")
    assert fc.sizes[FP] == 1 and float(fc["fc_msl"].max()) == 101300.0
    ob = open_gridded(tmp_path / "a.nc", role="obs")
    np.testing.assert_array_equal(ob["time"].values, times.to_numpy())
    with pytest.raises(ValueError, match=r"role must be"):
        open_gridded(tmp_path / "a.nc", role="truth")
