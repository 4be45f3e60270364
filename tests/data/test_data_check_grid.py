"""``probcast data check`` on a grid runs the unit and value checks training runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.cli import main
from probcast.data.check import CheckError, check
from probcast.train.data import load_table


def _grid(path: Path, offset: float, units: str = "K") -> Path:
    """A small canonical grid of ``fc_t2m``/``obs_t2m`` around ``offset`` in ``units``."""
    rng = np.random.default_rng(0)
    shape = (4, 2, 3, 3)
    coords = {
        "forecast_reference_time": pd.date_range("2024-01-01", periods=4, freq="D"),
        "forecast_period": pd.to_timedelta([6, 12], unit="h"),
        "latitude": [40.0, 41.0, 42.0],
        "longitude": [0.0, 1.0, 2.0],
    }
    dims = list(coords)
    ds = xr.Dataset(
        {
            name: (dims, offset + rng.normal(0, 3, shape), {"units": units})
            for name in ("fc_t2m", "obs_t2m")
        },
        coords=coords,
    )
    ds.to_netcdf(path)
    return path


def test_kelvin_label_on_celsius_values_fails_as_in_training(tmp_path: Path) -> None:
    path = _grid(tmp_path / "grid_Klie.nc", 10.0)
    with pytest.raises(CheckError) as err:
        check(path)
    with pytest.raises(ValueError) as trained:
        load_table(str(path))
    assert str(err.value) == str(trained.value)
    assert "fc_t2m has values in" in str(err.value)
    assert "wrong units? the values would fit as 'degC'" in str(err.value)


def test_cli_exit_code_and_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _grid(tmp_path / "grid_Klie.nc", 10.0)
    assert main(["data", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert "valid gridded dataset" not in captured.out
    assert captured.err.startswith(f"probcast data check: error: {path}: fc_t2m has values")
    assert "not 'K'" in captured.err


@pytest.mark.parametrize(("offset", "units"), [(280.0, "K"), (10.0, "degC")])
def test_plausible_grids_pass(tmp_path: Path, offset: float, units: str) -> None:
    text = check(_grid(tmp_path / "grid.nc", offset, units))
    assert "valid gridded dataset, targets: t2m" in text and "MAE fc_t2m vs obs_t2m" in text
