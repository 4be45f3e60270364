"""The cap on local EMOS fitting rows (train.emos_max_rows) and the network-size generators."""

from __future__ import annotations

import numpy as np
import pytest

from probcast.testing.grids import SCALES, forecast_grid
from probcast.testing.stations import NETWORK_VARIABLES, network_table, station_table
from probcast.train.blend import emos_rows


def test_small_tables_are_used_whole():
    table = station_table(n_stations=3, n_inits=10)
    assert emos_rows(table, max_rows=len(table)) is table
    assert emos_rows(table, max_rows=0) is table


def test_cap_keeps_every_station_in_proportion():
    table = network_table(n_stations=12, n_days=30, leads=(6.0, 12.0, 24.0))
    subset = emos_rows(table, max_rows=len(table) // 4, seed=3)
    assert abs(len(subset) - len(table) // 4) <= 12
    counts = subset["station"].value_counts()
    assert set(counts.index) == set(table["station"].unique())
    np.testing.assert_allclose(counts.to_numpy(), len(table) / 12 / 4, atol=1)
    assert subset.index.is_monotonic_increasing
    assert set(subset.index) <= set(table.index)
    again = emos_rows(table, max_rows=len(table) // 4, seed=3)
    assert subset.index.equals(again.index)


def test_network_table_is_canonical_and_physical():
    table = network_table(n_stations=5, n_days=10, leads=(3.0, 6.0))
    assert len(table) == 5 * 10 * 2
    assert not table.duplicated(["station", "init_time", "lead_time"]).any()
    for var in NETWORK_VARIABLES:
        assert table[f"fc_{var}"].dtype == np.float32
    assert table["obs_tp"].min() >= 0 and table["fc_tp"].min() >= 0
    assert table["obs_tcc"].between(0, 1).all() and table["fc_tcc"].between(0, 1).all()
    assert table["obs_t2m"].between(230, 330).all()
    with pytest.raises(ValueError, match="knows"):
        network_table(2, 2, targets=("snow",))


@pytest.mark.parametrize("var", sorted(SCALES))
def test_forecast_grid_knows_every_listed_variable(var):
    ds = forecast_grid((6, 8), n_runs=2, variables=(var,))
    fc = ds[f"fc_{var}"].to_numpy()
    assert np.isfinite(fc).all()
    if var in ("tp", "ws10", "tcc"):
        assert fc.min() >= 0
    if var == "tcc":
        assert fc.max() <= 1
