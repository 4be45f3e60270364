"""CF-1.8 metadata and provenance of written products, checked by the IOOS compliance-checker."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from probcast.products import Provenance, build_products, write_products
from probcast.products import cf as cfmod
from probcast.testing import products as synthetic

FAMILIES = {"t2m": "normal", "tp": "censored_logistic"}


def _write_all(products, folder, suffix):
    paths = {name: folder / f"{name}{suffix}" for name in products}
    for name, ds in products.items():
        write_products(ds, paths[name])
    return paths


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    params = synthetic.params((16, 24), variables=tuple(FAMILIES), lead_hours=(6.0, 12.0))
    prov = Provenance(
        model_fingerprint="sha256:abc123",
        input_files=("fc_2024011500.nc", "model.msgpack"),
        institution="probcast test suite",
        history="2024-01-15T03:00:00Z ingest",
        created="2024-01-15T04:00:00Z",
    )
    products = build_products(
        params,
        families=FAMILIES,
        n_members=4,
        percentiles=[10.0, 50.0, 90.0],
        thresholds={"t2m": [273.15, 283.15], "tp": [0.1, 1.0]},
        chunks={"y": 16, "x": 24},
        provenance=prov,
    )
    folder = tmp_path_factory.mktemp("cf")
    return _write_all(products, folder, ".nc")


def _failures(path: Path, tmp_path: Path) -> dict[str, list[str]]:
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / f"{path.stem}.json"
    ComplianceChecker.run_checker(
        str(path), ["cf:1.8"], 0, "normal", output_filename=str(report), output_format="json"
    )
    result = json.loads(report.read_text())["cf:1.8"]
    out: dict[str, list[str]] = {}
    for priority in ("high_priorities", "medium_priorities", "low_priorities"):
        failed = [c for c in result[priority] if c["value"][0] < c["value"][1]]
        out[priority] = [f"{c['name']}: {c['msgs']}" for c in failed]
    return out


def test_compliance_checker_cf18_passes_offline(
    written: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compliance_checker.cf import util

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("compliance-checker tried to download the standard-name table")

    monkeypatch.setattr(util, "download_cf_standard_name_table", no_network)
    for name in ("members", "percentiles", "probabilities_tp", "parameters"):
        failures = _failures(written[name], tmp_path)
        assert failures["high_priorities"] == [], (name, failures)
        assert failures["medium_priorities"] == [], (name, failures)


def test_variable_and_coordinate_attributes(written: dict[str, Path]) -> None:
    with netCDF4.Dataset(written["percentiles"]) as nc:
        tp = nc["tp"]
        assert tp.standard_name == "precipitation_amount"
        assert tp.units == "kg m-2"
        assert tp.cell_methods == "time: sum"
        assert tp.grid_mapping == synthetic.GRID_MAPPING
        assert "lambert_conformal_conic" not in tp.coordinates.split()
        assert {"latitude", "longitude", "time"} <= set(tp.coordinates.split())
        assert nc["percentile"].units == "%"
        assert nc["latitude"].standard_name == "latitude"
        assert nc["latitude"].units == "degrees_north"
        assert nc["longitude"].units == "degrees_east"
        assert nc["x"].standard_name == "projection_x_coordinate"
        mapping = nc[synthetic.GRID_MAPPING]
        assert mapping.grid_mapping_name == "lambert_conformal_conic"
        assert mapping.standard_parallel == 25.0
        assert nc["forecast_period"].standard_name == "forecast_period"
        assert nc["forecast_period"].units == "seconds"
        assert nc["forecast_period"].dtype == np.int32
        assert nc["forecast_reference_time"].standard_name == "forecast_reference_time"
        assert nc["time"].standard_name == "time"
        assert nc["time"].units.startswith("seconds since 1970-01-01")


def test_threshold_coordinate_in_file(written: dict[str, Path]) -> None:
    with netCDF4.Dataset(written["probabilities_t2m"]) as nc:
        prob = nc["probability_of_air_temperature_above_threshold"]
        assert prob.units == "1"
        assert prob.dimensions[0] == "threshold"
        threshold = nc["threshold"]
        assert threshold.standard_name == "air_temperature"
        assert threshold.units == "K"
        assert threshold.spp__relative_to_threshold == "greater_than"


def test_valid_time_round_trips(written: dict[str, Path]) -> None:
    with xr.open_dataset(written["members"]) as ds:
        expected = ds["forecast_reference_time"] + ds["forecast_period"]
        np.testing.assert_array_equal(ds["time"].values, expected.values)
        hours = ds["forecast_period"].values / np.timedelta64(1, "h")
        assert hours.tolist() == [6.0, 12.0]


def test_provenance_global_attributes(written: dict[str, Path]) -> None:
    with netCDF4.Dataset(written["members"]) as nc:
        attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
    assert attrs["Conventions"] == "CF-1.8"
    assert attrs["institution"] == "probcast test suite"
    assert attrs["model_fingerprint"] == "sha256:abc123"
    assert attrs["input_files"].split("\n") == ["fc_2024011500.nc", "model.msgpack"]
    assert attrs["date_created"] == "2024-01-15T04:00:00Z"
    assert attrs["history"].splitlines()[0] == "2024-01-15T03:00:00Z ingest"
    assert "probcast" in attrs["history"].splitlines()[1]
    assert attrs["probcast_version"]
    assert attrs["product"] == "members"


def test_creation_time_is_iso8601_and_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    now = cfmod.creation_time()
    assert datetime.fromisoformat(now.replace("Z", "+00:00")).tzinfo is not None
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1705291200")
    assert cfmod.creation_time() == "2024-01-15T04:00:00Z"


def test_variable_attrs_unknown_variable_has_long_name_only() -> None:
    assert cfmod.variable_attrs("foo") == {"long_name": "foo"}
    assert cfmod.variable_attrs("tmax")["cell_methods"] == "time: maximum"
    assert cfmod.probability_name("ws10") == "probability_of_wind_speed_above_threshold"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_latlon_from_a_float64_file_are_stored_as_float32(tmp_path: Path, suffix: str) -> None:
    grid = synthetic.params((12, 20), variables=("t2m",))
    source = tmp_path / "grid.nc"
    grid.to_netcdf(source)  # read back, latitude/longitude carry encoding dtype float64
    with xr.open_dataset(source) as read:
        ds = read.load()
    assert ds["latitude"].encoding["dtype"] == np.float64
    assert ds["x"].dtype == np.float64
    out = tmp_path / f"p{suffix}"
    _write_all({"p": ds}, tmp_path, suffix)
    with xr.open_dataset(out, engine="zarr" if suffix == ".zarr" else None) as back:
        assert back["latitude"].dtype == np.float32
        assert back["longitude"].dtype == np.float32
        np.testing.assert_allclose(back["latitude"], grid["latitude"], atol=1e-5)
        # Dimension coordinates stay exact.
        assert back["x"].dtype == np.float64
        np.testing.assert_array_equal(back["x"], grid["x"])


def test_regular_latlon_axes_stay_exact(tmp_path: Path) -> None:
    lat = np.linspace(50.0, 60.0, 7)
    lon = np.linspace(5.0, 15.0, 9)
    field = np.ones((7, 9), np.float32)
    ds = xr.Dataset(
        {"t2m": (("latitude", "longitude"), field)}, {"latitude": lat, "longitude": lon}
    )
    _write_all({"p": ds}, tmp_path, ".nc")
    with netCDF4.Dataset(tmp_path / "p.nc") as nc:
        assert nc["latitude"].dtype == np.float64
        np.testing.assert_array_equal(nc["latitude"][:], lat)


def test_a_forecast_period_without_a_unit_is_refused():
    from probcast.products.build import build_members

    dims = ("forecast_period", "y", "x")
    ds = xr.Dataset(
        {"t2m_loc": (dims, np.full((1, 2, 2), 290.0)), "t2m_scale": (dims, np.ones((1, 2, 2)))},
        coords={"forecast_period": [21600]},
    )
    for name in ds.data_vars:
        ds[name].attrs["distribution"] = "normal"
    with pytest.raises(ValueError, match="'forecast_period' is int64; expected timedelta64"):
        build_members(ds, n_members=3)
