"""Gridded inputs at prediction: infinite and physically impossible values are errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from probcast.predict.grid_checks import GridPredictError, check_values


def _grid(t2m: float = 280.0, tp: float = 1.0, lat0: float = 50.0, chunk: bool = False):
    shape = (2, 3, 4)
    ds = xr.Dataset(
        {
            "fc_t2m": (("forecast_period", "latitude", "longitude"), np.full(shape, t2m)),
            "fc_tp": (("forecast_period", "latitude", "longitude"), np.full(shape, tp)),
            "fc_unknown": (("forecast_period", "latitude", "longitude"), np.full(shape, 1e9)),
        },
        coords={"latitude": lat0 + np.arange(3.0), "longitude": np.arange(4.0)},
    )
    ds["fc_t2m"].attrs["units"] = "K"
    ds["fc_t2m"][0, 0, 0] = np.nan  # missing value: allowed
    return ds.chunk({"forecast_period": 1}) if chunk else ds


@pytest.mark.parametrize("chunk", [False, True])
def test_plausible_grid_passes(chunk):
    check_values(_grid(chunk=chunk), ["fc_t2m", "fc_tp", "fc_unknown"], "in.nc")


@pytest.mark.parametrize(
    "kwargs, name, match",
    [
        ({"t2m": 15.0}, "fc_t2m", r"in\.nc: fc_t2m has values in \[15, 15\], outside .* K"),
        ({"tp": -3.0}, "fc_tp", r"in\.nc: fc_tp has values .*outside .*kg m-2"),
        ({"tp": 1e6}, "fc_tp", r"in\.nc: fc_tp has values .*outside"),
        ({"tp": np.inf}, "fc_tp", r"in\.nc: fc_tp has 23 infinite"),
        ({"lat0": 89.0}, "fc_tp", r"in\.nc: latitude has values in \[89, 91\]"),
    ],
)
@pytest.mark.parametrize("chunk", [False, True])
def test_impossible_values_are_errors(kwargs, name, match, chunk):
    ds = _grid(chunk=chunk, **kwargs)
    if name == "fc_tp" and np.isinf(kwargs.get("tp", 0)):
        ds["fc_tp"][0, 0, 0] = np.nan
    with pytest.raises(GridPredictError, match=match):
        check_values(ds, ["fc_t2m", name], "in.nc")
