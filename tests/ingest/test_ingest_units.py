"""Units: the conversion table, the user's units (``--units``) and grids converted by their
``units`` attribute whatever their variable names (issues 13 and 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from probcast import schema
from probcast.ingest.grid_values import canonical_units, check_grid
from probcast.ingest.gridded import GriddedReadError, open_gridded
from probcast.testing.grids import forecast_grid
from probcast.units import UnitError, parse_units, user_units

CASES = [
    ("t2m", "degC", 0.0, 273.15),
    ("t2m", "degrees_Celsius", 10.0, 283.15),
    ("t2m", "degF", 212.0, 373.15),
    ("tp", "mm", 5.0, 5.0),
    ("tp", "cm", 0.5, 5.0),
    ("tp", "m", 0.005, 5.0),
    ("tp", "in", 1.0, 25.4),
    ("msl", "hPa", 1013.25, 101325.0),
    ("tcc", "%", 50.0, 0.5),
    ("tcc", "okta", 4.0, 0.5),
    ("ws10", "knots", 10.0, 5.14444),
    ("ws10", "mph", 10.0, 4.4704),
]


@pytest.mark.parametrize(("var", "units", "value", "canonical"), CASES)
def test_user_units_convert_both_ways(var: str, units: str, value: float, canonical: float):
    unit = user_units({var: units})[var]
    assert unit.to_canonical(value) == pytest.approx(canonical)
    assert unit.to_user(canonical) == pytest.approx(value)
    assert schema.to_canonical_units(np.array([value]), units, var)[0] == pytest.approx(canonical)


@given(st.sampled_from(CASES), st.floats(-1e4, 1e4, allow_nan=False))
def test_round_trip_is_identity(case: tuple, x: float) -> None:
    var, units, _, _ = case
    unit = user_units({var: units})[var]
    assert unit.to_user(unit.to_canonical(x)) == pytest.approx(x, abs=1e-9)


def test_parse_units_spec_aliases_and_cf_spelling():
    assert parse_units("t2m=degrees_celsius, precip=MM;10si=kt") == {
        "t2m": "degC",
        "tp": "mm",
        "ws10": "knot",
    }
    assert parse_units(["t2m=degC", "tp=mm"]) == {"t2m": "degC", "tp": "mm"}
    assert parse_units(None) == {} and parse_units("") == {}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("t2m", r"must look like 't2m=degC,tp=mm'"),
        ("t2m=", r"must look like"),
        ("foo=degC", r"unknown variable 'foo'"),
        ("t2m=mm", r"--units: variable 't2m' has units 'mm'; expected 'K' or .*degC, degF"),
        ("tp=degC", r"expected 'kg m-2' or a convertible unit \(mm, cm, m, in\)"),
    ],
)
def test_bad_units_spec_is_a_clear_error(spec: str, match: str):
    with pytest.raises(UnitError, match=match):
        parse_units(spec)


def test_threshold_conversion_is_tidy():
    unit = user_units({"t2m": "degC"})["t2m"]
    assert unit.thresholds_to_canonical([0.1, -5]) == (273.25, 268.15)
    assert unit.thresholds_to_user([273.25]) == (0.1,)


def test_range_hint_names_the_units_that_fit():
    assert "fit as 'degC' or 'degF', not 'K'" in schema.range_error(15.0, 30.0, "t2m")
    hint = schema.range_error(5000.0, 12288.0, "tp", units="m")
    assert hint is not None and "'mm', not 'm'" in hint
    assert schema.range_error(250.0, 300.0, "t2m") is None
    assert "corrupted" in schema.units_hint(-500.0, 1e9, "t2m")


def _celsius_file(path: Path, units: str | None = "degC") -> Path:
    ds = forecast_grid((4, 5), 2, variables=("t2m",), layout="regular")
    for name in ("fc_t2m", "obs_t2m"):
        ds[name] = ds[name] - 273.15
        ds[name].attrs.pop("units", None)
        if units is not None:
            ds[name].attrs["units"] = units
    ds.to_netcdf(path)
    return path


def test_open_gridded_converts_canonical_names_by_their_units(tmp_path: Path):
    """Issue 14: ``fc_t2m`` in degC (units="degC") used to come out unconverted as 'K'."""
    ds = open_gridded(_celsius_file(tmp_path / "c.nc"))
    ref = forecast_grid((4, 5), 2, variables=("t2m",), layout="regular")
    np.testing.assert_allclose(ds["fc_t2m"].values, ref["fc_t2m"].values, atol=1e-9)
    assert ds["fc_t2m"].attrs["units"] == "K" and ds["fc_t2m"].attrs["source_units"] == "degC"


def test_open_gridded_refuses_missing_and_unknown_units(tmp_path: Path):
    with pytest.raises(GriddedReadError, match=r"none.nc: variable 'fc_t2m' has no units") as e:
        open_gridded(_celsius_file(tmp_path / "none.nc", units=None))
    assert "degC" in str(e.value)
    with pytest.raises(GriddedReadError, match=r"odd.nc: variable 'fc_t2m' has units 'furlong'"):
        open_gridded(_celsius_file(tmp_path / "odd.nc", units="furlong"))


def test_conversion_stays_lazy_on_dask():
    ds = forecast_grid((4, 5), 2, variables=("tp",)).chunk({"forecast_reference_time": 1})
    ds["fc_tp"] = ds["fc_tp"] / 1000.0
    ds["fc_tp"].attrs["units"] = "m"
    out = canonical_units(ds, "mem")
    assert out["fc_tp"].chunks is not None
    np.testing.assert_allclose(out["fc_tp"].values, ds["fc_tp"].values * 1000.0)
    assert out["obs_tp"] is not None and out["obs_tp"].attrs["units"] == "kg m-2"


def test_float_noise_is_clipped_like_tables():
    ds = forecast_grid((4, 5), 2, variables=("tcc",))
    ds["fc_tcc"][0, 0, 0, 0] = 1.0 + 1e-6
    assert float(check_grid(ds, "mem")["fc_tcc"].max()) == 1.0
    ds["fc_tcc"][0, 0, 0, 0] = 1.2
    with pytest.raises(GriddedReadError, match=r"mem: fc_tcc has values in \[.*, 1.2\]"):
        check_grid(ds, "mem")
    xr.testing.assert_equal(ds, ds)  # the input is not modified
    assert float(ds["fc_tcc"].max()) == pytest.approx(1.2)


def test_an_extra_models_field_is_converted_and_checked_like_the_raw_forecast():
    # audit: fc_tp_<model> in metres was used unconverted, and out-of-range values passed
    ds = forecast_grid((4, 5), 2, variables=("tp",))
    ds["fc_tp_other"] = ds["fc_tp"] / 1000.0
    ds["fc_tp_other"].attrs["units"] = "m"
    ds["fc_tp_spread"] = ds["fc_tp"] * 0 + 0.5  # derived: not a value of tp
    out = check_grid(ds, "mem")
    np.testing.assert_allclose(out["fc_tp_other"].values, ds["fc_tp"].values)
    assert out["fc_tp_other"].attrs["units"] == "kg m-2"
    ds["fc_tp_other"] = ds["fc_tp"] * 1000.0 + 2000.0  # labelled kg m-2, far too large
    ds["fc_tp_other"].attrs["units"] = "kg m-2"
    with pytest.raises(GriddedReadError, match=r"mem: fc_tp_other has values in .*physical range"):
        check_grid(ds, "mem")
    del ds["fc_tp_other"].attrs["units"]
    with pytest.raises(GriddedReadError, match=r"'fc_tp_other' has no units attribute"):
        check_grid(ds, "mem")
    ds["fc_tp_other"] = (ds["fc_tp"] * np.nan).assign_attrs(units="mm")  # not in this run
    assert bool(check_grid(ds, "mem")["fc_tp_other"].isnull().all())  # its rows fall back


def test_a_lead_time_without_a_time_unit_is_refused_before_any_work(tmp_path: Path):
    # audit: integer hours without units were predicted, then failed when written
    from probcast.align.points import open_grid

    ds = forecast_grid((4, 5), 1, variables=("tp",))
    ds["forecast_period"] = ("forecast_period", [24])
    ds.to_netcdf(tmp_path / "int.nc")
    with pytest.raises(GriddedReadError, match=r"int.nc: forecast_period holds int64 values"):
        open_grid(tmp_path / "int.nc")


@pytest.mark.parametrize(
    ("name", "units", "factor"),
    [
        ("fc_tp_spread", "m", 1000.0),  # a difference: scale only
        ("fc_t2m_spread", "degC", 1.0),  # no offset for a spread
        ("fc_t2m_diff", "delta_degF", 5.0 / 9.0),
        ("fc_sp_trend", "hPa", 100.0),
        ("fc_sp_var", "hPa2", 1e4),  # a variance: the scale squared
        ("fc_ws10_var", "(km/h)^2", (1 / 3.6) ** 2),
    ],
)
def test_a_supplied_spread_or_difference_is_scaled_by_its_units(
    name: str, units: str, factor: float
):
    # audit: a precomputed fc_<var>_spread kept the file's units (tp spread in m 1000x small)
    var = name.split("_")[1]
    ds = forecast_grid((4, 5), 2, variables=(var,))
    ds[name] = (ds[f"fc_{var}"] * 0 + 2.0).assign_attrs(units=units)
    out = check_grid(ds, "mem")
    np.testing.assert_allclose(out[name].values, 2.0 * factor)
    assert out[name].attrs["source_units"] == units


def test_a_derived_field_without_or_with_foreign_units_is_kept(caplog: pytest.LogCaptureFixture):
    ds = forecast_grid((4, 5), 2, variables=("tp",))
    ds["fc_tp_spread"] = ds["fc_tp"] * 0 + 0.5  # no units: canonical, as in station tables
    ds["fc_tp_anom"] = (ds["fc_tp"] * 0 + 0.5).assign_attrs(units="1")  # a ratio
    out = check_grid(ds, "mem")
    np.testing.assert_allclose(out["fc_tp_spread"].values, 0.5)
    np.testing.assert_allclose(out["fc_tp_anom"].values, 0.5)
    assert "fc_tp_anom has units '1', not convertible" in caplog.text
