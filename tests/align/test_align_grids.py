"""align_truth (grids) and align_station_obs (tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.align import align_station_obs, align_truth

FRT, FP = "forecast_reference_time", "forecast_period"
T0 = np.datetime64("2024-01-01T00:00", "ns")
HOUR = np.timedelta64(1, "h").astype("m8[ns]")


def truth(n_hours: int = 96, missing: tuple[int, ...] = ()) -> xr.Dataset:
    """Truth whose value at each node is the valid hour since T0 (easy to check)."""
    hours = np.array([h for h in range(n_hours) if h not in missing])
    data = np.broadcast_to(hours[:, None, None], (len(hours), 2, 3)).astype(float)
    return xr.Dataset(
        {"obs_tp": (("time", "latitude", "longitude"), data)},
        coords={"time": T0 + hours * HOUR, "latitude": [1.0, 2.0], "longitude": [0.0, 1.0, 2.0]},
    )


def forecast(inits: list[int], leads: list[int]) -> xr.Dataset:
    shape = (len(inits), len(leads), 2, 3)
    return xr.Dataset(
        {"fc_tp": ((FRT, FP, "latitude", "longitude"), np.zeros(shape))},
        coords={
            FRT: T0 + np.array(inits) * HOUR,
            FP: np.array(leads) * HOUR,
            "latitude": [1.0, 2.0],
            "longitude": [0.0, 1.0, 2.0],
        },
    )


@settings(max_examples=40, deadline=None)
@given(
    inits=st.lists(st.integers(0, 60), min_size=1, max_size=4, unique=True),
    leads=st.lists(st.integers(0, 48), min_size=1, max_size=4, unique=True),
    gap=st.integers(0, 100),
)
def test_truth_lands_at_valid_time(inits: list[int], leads: list[int], gap: int):
    out = align_truth(forecast(inits, leads), truth(missing=(gap,)))
    for a, i in enumerate(inits):
        for b, lead in enumerate(leads):
            got = out["obs_tp"].values[a, b]
            valid = i + lead
            if valid == gap or valid >= 96:
                assert np.isnan(got).all()
            else:
                assert (got == valid).all()
    np.testing.assert_array_equal(out["valid_time"], out[FRT] + out[FP])
    assert out["obs_tp"].dims == (FRT, FP, "latitude", "longitude")


def test_analysis_with_lead_zero_and_fc_names_is_accepted():
    t = truth().rename({"time": FRT, "obs_tp": "fc_tp"}).expand_dims({FP: [0 * HOUR]}, axis=1)
    out = align_truth(forecast([0, 6], [6]), t)
    assert out["obs_tp"].values[1, 0, 0, 0] == 12.0


def test_grids_must_match():
    with pytest.raises(ValueError, match=r"grids differ: latitude"):
        align_truth(forecast([0], [1]), truth().assign_coords(latitude=[1.0, 2.5]))
    with pytest.raises(ValueError, match=r"grids differ: forecast spatial dims"):
        align_truth(forecast([0], [1]), truth().isel(longitude=[0, 1]))
    with pytest.raises(ValueError, match=r"truth has no obs_<var>"):
        align_truth(forecast([0], [1]), truth().rename({"obs_tp": "tp"}))
    with pytest.raises(ValueError, match=r"forecast needs"):
        align_truth(truth(), truth())


def station_forecasts() -> pd.DataFrame:
    init = pd.Timestamp("2024-01-01", tz="UTC")
    df = pd.DataFrame(
        {
            "station": ["a", "a", "b", "b"],
            "init_time": init,
            "lead_time": [1.0, 2.0, 1.0, 2.0],
            "fc_t2m": [1.0, 2.0, 3.0, 4.0],
        }
    )
    df["valid_time"] = df["init_time"] + pd.to_timedelta(df["lead_time"], unit="h")
    return df


def test_station_obs_join_by_station_and_nearest_time():
    obs = pd.DataFrame(
        {
            "station": ["a", "a", "b"],
            "time": pd.to_datetime(["2024-01-01T01:10", "2024-01-01T02:00", "2024-01-01T03:00"]),
            "obs_t2m": [10.0, 20.0, 30.0],
        }
    )
    out = align_station_obs(station_forecasts(), obs, tolerance="30min")
    np.testing.assert_array_equal(out["obs_t2m"], [10.0, 20.0, np.nan, np.nan])
    assert list(out["fc_t2m"]) == [1.0, 2.0, 3.0, 4.0]  # row order kept
    out = align_station_obs(station_forecasts(), obs, tolerance="1h")
    np.testing.assert_array_equal(out["obs_t2m"], [10.0, 20.0, np.nan, 30.0])


def test_station_obs_errors():
    fc = station_forecasts()
    obs = pd.DataFrame(
        {"station": ["a", "a"], "time": ["2024-01-01T01", "2024-01-01T01"], "obs_t2m": [1.0, 2.0]}
    )
    with pytest.raises(ValueError, match=r"duplicate"):
        align_station_obs(fc, obs)
    with pytest.raises(ValueError, match=r"no obs_<var>"):
        align_station_obs(fc, obs.drop(columns="obs_t2m"))
    with pytest.raises(ValueError, match=r"already hold"):
        align_station_obs(fc.assign(obs_t2m=0.0), obs.iloc[:1])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['time'\]"):
        align_station_obs(fc, obs.drop(columns="time"))
