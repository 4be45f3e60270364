import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probcast import cli, schema


@pytest.mark.parametrize(
    ("value", "units", "var", "expected"),
    [
        (0.0, "degC", "t2m", 273.15),
        (32.0, "degF", "t2m", 273.15),
        (0.0, "degrees_C", "t2m", 273.15),  # CF's plural spellings too
        (0.0, "degrees_Celsius", "t2m", 273.15),
        (32.0, "degrees_F", "t2m", 273.15),
        (1013.25, "hPa", "msl", 101325.0),
        (5.0, "mm", "tp", 5.0),
        (0.005, "m", "tp", 5.0),
        (50.0, "%", "tcc", 0.5),
        (36.0, "km/h", "ws10", 10.0),
        (280.0, "K", "t2m", 280.0),
    ],
)
def test_unit_conversion(value: float, units: str, var: str, expected: float) -> None:
    assert schema.to_canonical_units(np.array([value]), units, var)[0] == pytest.approx(expected)


def test_unknown_unit_names_variable_and_expected() -> None:
    with pytest.raises(schema.UnitError, match=r"f.nc: variable 't2m' has units 'furlong'.*'K'"):
        schema.to_canonical_units(np.array([1.0]), "furlong", "t2m", source="f.nc")


@pytest.mark.parametrize("units", ["delta_degC", "delta_degF"])
def test_a_difference_unit_is_refused_for_an_absolute_temperature(units: str) -> None:
    # pint converts a temperature difference to K unchanged: 10 delta_degC would be 10 K
    with pytest.raises(schema.UnitError, match=rf"units '{units}'; expected 'K'"):
        schema.unit_affine(units, "t2m")


@pytest.mark.parametrize("units", ["mm", "m"])  # without and with a conversion
def test_r_na_becomes_a_quiet_nan_that_casts_without_warning(units: str) -> None:
    r_na = np.array([0x7FF00000000007A2], dtype=np.uint64).view(np.float64)  # R's NA_real_
    values = np.array([1.0, r_na[0], np.nan])
    with np.errstate(invalid="raise"):
        with pytest.raises(FloatingPointError):
            values.astype(np.float32)  # the payload NaN is signalling
        out = schema.to_canonical_units(values, units, "tp").astype(np.float32)
    assert np.isnan(out[1:]).all() and out[0] == (1.0 if units == "mm" else 1000.0)


def test_physical_range_message_names_column() -> None:
    with pytest.raises(ValueError, match=r"obs_t2m: 1 value\(s\) outside.*wrong units"):
        schema.check_physical_range(np.array([280.0, 25.0]), "t2m", column="obs_t2m")


@given(st.floats(min_value=-80, max_value=60))
def test_celsius_kelvin_round_trip(c: float) -> None:
    k = schema.to_canonical_units(np.array([c]), "degC", "t2m")[0]
    assert k - 273.15 == pytest.approx(c, abs=1e-9)


def test_aliases() -> None:
    assert schema.canonical_name("2t") == "t2m"
    assert schema.canonical_name("APCP") == "tp"
    assert schema.targets_in(["station", "fc_tp", "obs_tp", "obs_t2m"]) == ["tp", "t2m"]


def test_cli_help_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert cli.main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
