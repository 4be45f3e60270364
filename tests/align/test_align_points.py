"""Grid -> station table: neighbourhood statistics, layouts, NaN areas, tiles, training hook."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.align import neighbourhood as nb
from probcast.align.points import grid_to_table, prepare_fields, spatial_dims
from probcast.features import FeatureSpec
from probcast.testing.grids import forecast_grid


def _brute_window(a: np.ndarray, j: int, i: int, k: int) -> np.ndarray:
    h = k // 2
    win = a[..., max(0, j - h) : j + h + 1, max(0, i - h) : i + h + 1]
    return win.reshape(*a.shape[:-2], -1)


def _reference(win: np.ndarray, stat: str) -> np.ndarray:
    with warnings.catch_warnings():  # all-NaN windows: numpy warns and gives NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        if stat == "mean":
            return np.nanmean(win, axis=-1)
        if stat == "max":
            return np.nanmax(win, axis=-1)
        return np.nanstd(win, axis=-1)


@pytest.mark.parametrize("stat", nb.STATS)
@pytest.mark.parametrize("k", [3, 5])
def test_window_stats_match_brute_force(stat: str, k: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.gamma(0.5, 2.0, size=(2, 1, 9, 11))
    a[0, 0, 2:5, 3:6] = np.nan  # a NaN area
    a[1, 0, 0, 0] = np.nan
    out = nb.window_stat(a, k, stat)
    for j, i in [(0, 0), (3, 4), (8, 10), (4, 0), (2, 9)]:
        np.testing.assert_allclose(
            out[..., j, i], _reference(_brute_window(a, j, i, k), stat), atol=1e-9
        )


def test_window_all_nan_gives_nan() -> None:
    a = np.full((1, 1, 6, 6), np.nan)
    a[0, 0, 5, 5] = 2.0
    for stat in nb.STATS:
        out = nb.window_stat(a, 3, stat)
        assert np.isnan(out[0, 0, 0, 0]) and np.isfinite(out[0, 0, 4, 4])


@pytest.mark.parametrize("stat", nb.STATS)
def test_point_stats_are_the_k_nearest_nodes(stat: str) -> None:
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(40, 42, 60), rng.uniform(-100, -97, 60)
    values = rng.normal(size=(3, 60))
    values[0, :5] = np.nan
    idx = nb.point_neighbours(lat, lon, 9)
    out = nb.point_stat(values, idx, stat)
    # brute force: great-circle distances
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    cosd = np.sin(la)[:, None] * np.sin(la) + np.cos(la)[:, None] * np.cos(la) * np.cos(
        lo[:, None] - lo
    )
    order = np.argsort(-cosd, axis=1)[:, :9]
    for p in (0, 7, 33):
        assert order[p, 0] == p and set(order[p]) == set(idx[p])
        np.testing.assert_allclose(out[:, p], _reference(values[:, order[p]], stat), atol=1e-12)


def test_window_size_rescales_to_the_same_distance() -> None:
    assert nb.window_size(3) == 3 and nb.window_size(7, 1.0) == 7
    assert nb.window_size(3, 60 / 4.0) == 45  # 180 km at 4 km spacing
    assert nb.window_size(7, 0.1) == 1
    with pytest.raises(ValueError, match="odd integers"):
        nb.check_windows([3, 4])


@settings(max_examples=40, deadline=None)
@given(
    y0=st.integers(0, 12),
    x0=st.integers(0, 16),
    size=st.integers(1, 8),
    k=st.sampled_from([3, 5, 7]),
    stat=st.sampled_from(nb.STATS),
)
def test_a_tile_with_halo_equals_the_whole_grid(
    y0: int, x0: int, size: int, k: int, stat: str
) -> None:
    a = prepare_fields(forecast_grid((13, 17), 1))["fc_tp"].values
    a[..., 3:6, 4:9] = np.nan
    y1, x1, h = min(13, y0 + size), min(17, x0 + size), k // 2
    top, left = min(h, y0), min(h, x0)
    block = a[..., y0 - top : y1 + h, x0 - left : x1 + h]
    tile = nb.window_stat(block, k, stat)[..., top : top + y1 - y0, left : left + x1 - x0]
    np.testing.assert_array_equal(tile, nb.window_stat(a, k, stat)[..., y0:y1, x0:x1])


@pytest.mark.parametrize("layout", ["projected", "regular", "point"])
def test_grid_to_table_layouts(layout: str) -> None:
    ds = forecast_grid((6, 8), 3, layout=layout, lead_hours=(12.0, 24.0))
    table = grid_to_table(ds, neighbourhood="3")
    assert len(table) == 3 * 2 * 48
    first = ["station", "init_time", "lead_time", "valid_time", "latitude", "longitude"]
    assert list(table.columns[:6]) == first
    assert {"fc_tp", "obs_tp", "fc_tp_nbr3_mean", "fc_tp_nbr3_max", "fc_tp_nbr3_std"} <= set(
        table.columns
    )
    assert table["station"].nunique() == 48
    assert table["station"].iloc[1] == ("p1" if layout == "point" else "y0x1")
    assert str(table["init_time"].dt.tz) == "UTC"
    np.testing.assert_array_equal(
        table["valid_time"], table["init_time"] + pd.to_timedelta(table["lead_time"], unit="h")
    )
    np.testing.assert_array_equal(table["fc_tp"], ds["fc_tp"].values.ravel())
    grid = table.attrs["grid"]
    assert grid["neighbourhood"] == [3] and grid["dims"] == list(spatial_dims(ds))


def test_nan_areas_are_dropped_and_ignored_by_neighbours() -> None:
    ds = forecast_grid((8, 10), 2)
    ds["fc_tp"][:, :, :3, :4] = np.nan  # e.g. a masked sea area
    table = grid_to_table(ds, neighbourhood=(3,))
    assert len(table) == 2 * (80 - 12)
    assert not table.station.isin(["y0x0", "y2x3"]).any()
    assert table.filter(like="fc_tp").notna().all().all()
    row = table[(table.station == "y3x3")].iloc[0]
    window = ds["fc_tp"].values[0, 0, 2:5, 2:5]
    assert row["fc_tp_nbr3_mean"] == pytest.approx(np.nanmean(window))


def test_ensemble_becomes_mean_and_spread_and_statics_are_found() -> None:
    ds = forecast_grid((4, 5), 2).drop_vars("obs_tp")
    members = xr.concat([ds["fc_tp"], ds["fc_tp"] + 1.0], dim="realization")
    ds = ds.assign(fc_tp=members, orography=(("y", "x"), np.arange(20.0).reshape(4, 5)))
    table = grid_to_table(ds, neighbourhood="")
    np.testing.assert_allclose(table["fc_tp"], ds["fc_tp"].mean("realization").values.ravel())
    np.testing.assert_allclose(table["fc_tp_spread"], 0.5)
    np.testing.assert_array_equal(table["altitude"][:20], np.arange(20.0))
    assert not [c for c in table.columns if "_nbr" in c]


def test_feature_spec_records_the_grid_and_load_table_reads_grids(tmp_path) -> None:
    from probcast.ingest.gridded import write_dataset
    from probcast.train.data import load_table

    path = write_dataset(forecast_grid((6, 7), 4), tmp_path / "grid.nc")
    table, source = load_table(str(path), neighbourhood="3")
    assert source == str(path) and "fc_tp_nbr3_max" in table.columns
    spec = FeatureSpec.fit(table.iloc[: len(table) // 2], "tp")
    assert spec.grid is not None and spec.grid["neighbourhood"] == [3]
    again = FeatureSpec.from_dict(spec.to_dict())
    assert again.grid == spec.grid
    old = spec.to_dict()
    del old["grid"]  # artefacts written before the field existed still load
    assert FeatureSpec.from_dict(old).grid is None
