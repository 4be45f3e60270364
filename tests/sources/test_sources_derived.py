from __future__ import annotations

import numpy as np
import pytest

from probcast.sources import deaccum
from probcast.sources.errors import SourceError
from probcast.sources.variables import needed, relative_humidity, wind_direction, wind_speed


def test_ecmwf_since_init():
    # tp since init: 2.0 mm at +6 h, 5.5 mm at +12 h -> 3.5 mm over 6-12 h
    w = {(0.0, 6.0): np.array([2.0]), (0.0, 12.0): np.array([5.5])}
    assert deaccum.amount(w, 6.0, 12.0) == pytest.approx([3.5])
    assert deaccum.amount(w, 0.0, 6.0) == pytest.approx([2.0])
    assert deaccum.amount(w, 12.0, 18.0) is None


def test_gfs_six_hour_buckets():
    # buckets reset every 6 h: [0,3]=1, [0,6]=4, [6,9]=2, [6,12]=7
    w = {
        (0.0, 3.0): np.array([1.0]),
        (0.0, 6.0): np.array([4.0]),
        (6.0, 9.0): np.array([2.0]),
        (6.0, 12.0): np.array([7.0]),
    }
    assert deaccum.amount(w, 9.0, 12.0) == pytest.approx([5.0])  # 7 - 2
    assert deaccum.amount(w, 3.0, 9.0) == pytest.approx([5.0])  # (4 - 1) + 2
    assert deaccum.amount(w, 0.0, 12.0) == pytest.approx([11.0])  # 4 + 7
    assert deaccum.amount(w, 3.0, 6.0) == pytest.approx([3.0])


def test_hrrr_total_and_last_hour():
    # wrfsfcf12: [0,12]=10.0 and [11,12]=0.8; f11: [0,11]=9.2
    w = {(0.0, 12.0): np.array([10.0]), (11.0, 12.0): np.array([0.8]), (0.0, 11.0): np.array([9.2])}
    assert deaccum.amount(w, 11.0, 12.0) == pytest.approx([0.8])
    assert deaccum.amount(w, 0.0, 11.0) == pytest.approx([9.2])


def test_negative_differences():
    w = {(0.0, 6.0): np.array([2.0, 2.0, np.nan]), (0.0, 12.0): np.array([1.97, 1.0, 3.0])}
    out = deaccum.amount(w, 6.0, 12.0)
    assert out is not None
    assert out[0] == 0.0  # -0.03: packing noise -> 0
    assert np.isnan(out[1])  # -1.0: inconsistent -> NaN
    assert np.isnan(out[2])


def test_wind_from_components():
    u = np.array([0.0, 1.0, -3.0, 0.0, 3.0])
    v = np.array([-1.0, 0.0, 0.0, 0.0, 4.0])
    assert wind_speed(u, v) == pytest.approx([1.0, 1.0, 3.0, 0.0, 5.0])
    d = wind_direction(u, v)
    assert d[:3] == pytest.approx([0.0, 270.0, 90.0])  # from N, from W, from E
    assert np.isnan(d[3])  # calm: no direction
    assert d[4] == pytest.approx(216.8699, abs=1e-3)  # atan2(-3,-4) = -143.13 -> 216.87


def test_relative_humidity_magnus():
    # t = 20 degC, td = 10 degC: es(10) = 12.2614 hPa, es(20) = 23.3340 hPa -> 0.52547
    rh = relative_humidity(np.array([293.15]), np.array([283.15]))
    assert rh == pytest.approx([0.52547], abs=2e-4)
    assert relative_humidity(np.array([280.0]), np.array([280.0])) == pytest.approx([1.0])


def test_needed_adds_inputs_and_refuses_unknown():
    assert needed(["ws10", "rh"]) == ["ws10", "u10", "v10", "rh", "t2m", "td2m"]
    with pytest.raises(SourceError, match="unknown variable 'snow'"):
        needed(["snow"])
