"""Readers of a ``data build`` grid store see only the cycles ``grid-state.json`` commits.

An append interrupted anywhere (an exception raised after the K-th Zarr write, for every K
of the append; the crash audit killed the process the same way) or a cycle written but not
yet recorded must not be read: ``open_gridded``, ``open_grid`` (training) and ``data
check`` see the committed cycles, exactly, and a warning says how many are present. A
store without a state of its own reads as before.
"""

from __future__ import annotations

import json
import logging
import re

import fsspec
import numpy as np
import pytest
import xarray as xr
import zarr.storage

from probcast.align.points import open_grid
from probcast.data.check import check
from probcast.ingest.encoding import open_cf
from probcast.ingest.errors import GriddedReadError
from probcast.ingest.gridded import open_gridded
from probcast.sources.grid_store import STATE, append_cycle, committed, grid_signature
from probcast.testing.grids import forecast_grid

FRT = "forecast_reference_time"


class Interrupted(Exception):
    """Stands for the process dying half-way through an append."""


@pytest.fixture(scope="module")
def grid() -> xr.Dataset:
    ds = forecast_grid((3, 4), 3, layout="regular", variables=("t2m", "u10"))
    return ds.assign_coords(valid_time=ds[FRT] + ds["forecast_period"])


def _key(ds: xr.Dataset) -> str:
    return f"{ds[FRT].to_index()[0]:%Y-%m-%dT%H:%M}Z"


def _build(store, grid: xr.Dataset, n: int) -> dict:
    state: dict = {"cycles": [], "grid": ""}
    for i in range(n):
        cycle = grid.isel({FRT: [i]})
        state = append_cycle(store, cycle, _key(cycle), state, grid_signature(cycle))
    return state


def _interrupt_after(monkeypatch, k: int, before: str = "") -> list[str]:
    """Make the K-th Zarr write from now on raise (after it is done), or the first write
    of the key ``before`` (instead of it); the keys written."""
    original = zarr.storage.LocalStore.set
    written: list[str] = []

    async def set_(self, key, value):
        if key == before:
            raise Interrupted(key)
        await original(self, key, value)
        written.append(key)
        if len(written) == k:
            raise Interrupted(key)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", set_)
    return written


def _append_writes(tmp_path, grid, monkeypatch) -> int:
    """How many Zarr writes the third append makes."""
    store = tmp_path / "count" / "grid.zarr"
    state = _build(store, grid, 2)
    written = _interrupt_after(monkeypatch, 0)
    cycle = grid.isel({FRT: [2]})
    append_cycle(store, cycle, _key(cycle), state, grid_signature(cycle))
    monkeypatch.undo()
    return len(written)


def _lengths(store) -> set[int]:
    group = zarr.open_group(str(store), mode="r", use_consolidated=False)
    return {arr.shape[0] for name, arr in group.arrays() if name.startswith(("fc_", "obs_", FRT))}


def _same_values(ds: xr.Dataset, grid: xr.Dataset, n: int) -> None:
    assert ds.sizes[FRT] == n
    np.testing.assert_array_equal(ds[FRT].values, grid[FRT].values[:n])
    for name in ("fc_t2m", "obs_t2m", "fc_u10", "obs_u10"):
        np.testing.assert_allclose(ds[name].values, grid[name].values[:n], rtol=0, atol=0)


def test_an_append_interrupted_at_any_write_is_not_read(tmp_path, grid, monkeypatch, caplog):
    total = _append_writes(tmp_path, grid, monkeypatch)
    assert total >= 10
    seen_longer = 0
    for k in range(1, total + 1):
        store = tmp_path / f"k{k}" / "grid.zarr"
        state = _build(store, grid, 2)
        _interrupt_after(monkeypatch, k)
        cycle = grid.isel({FRT: [2]})
        with pytest.raises(Interrupted):
            append_cycle(store, cycle, _key(cycle), state, grid_signature(cycle))
        monkeypatch.undo()
        assert len(json.loads((store.parent / STATE).read_text())["cycles"]) == 2
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="probcast.ingest.grid_commit"):
            ds = open_gridded(store)
        _same_values(ds, grid, 2)
        if max(_lengths(store)) > 2:  # part of the third cycle is in the store
            seen_longer += 1
            (line,) = [r.getMessage() for r in caplog.records]
            assert f"{store}: reading the 2 committed reference time(s) of 3 present" in line
            assert "rerun it to repair" in line
        else:
            assert not caplog.records
        # a rerun cuts the store back; the third cycle is then appended once
        state = committed(store)
        assert state["cycles"] == [_key(grid.isel({FRT: [i]})) for i in range(2)]
        append_cycle(store, cycle, _key(cycle), state, grid_signature(cycle))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="probcast.ingest.grid_commit"):
            _same_values(open_gridded(store), grid, 3)
        assert not caplog.records
    assert seen_longer >= total // 2  # the interesting states were reached


def test_check_and_training_see_only_committed_cycles(tmp_path, grid, monkeypatch):
    # interrupted just before the consolidated metadata: every array is 3 long and
    # xarray reading the arrays' own metadata saw 3 valid-looking reference times
    store = tmp_path / "out" / "grid.zarr"
    state = _build(store, grid, 2)
    written = _interrupt_after(monkeypatch, 0, before=".zmetadata")
    cycle = grid.isel({FRT: [2]})
    with pytest.raises(Interrupted):
        append_cycle(store, cycle, _key(cycle), state, grid_signature(cycle))
    monkeypatch.undo()
    assert ".zmetadata" not in written and _lengths(store) == {3}
    report = check(store)
    assert re.search(r"forecast times\s+2\n", report), report
    assert re.search(r"missing obs_t2m\s+0\.00%", report), report
    lazy = open_grid(store, chunks={FRT: 1})
    _same_values(lazy, grid, 2)


def test_a_cycle_written_but_not_recorded_is_not_read(tmp_path, grid, caplog):
    store = tmp_path / "out" / "grid.zarr"
    _build(store, grid, 2)
    grid.isel({FRT: [2]}).to_zarr(store, append_dim=FRT, consolidated=True)  # state not written
    with caplog.at_level(logging.WARNING, logger="probcast.ingest.grid_commit"):
        _same_values(open_gridded(store), grid, 2)
        mapper = fsspec.filesystem("file").get_mapper(str(store))  # as NWP source of a build
        _same_values(open_cf(mapper, "zarr", chunks={}, decode_timedelta=True), grid, 2)
    assert caplog.text.count("2 committed reference time(s) of 3 present") == 2
    committed(store)  # the repair of a rerun
    assert _lengths(store) == {2}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="probcast.ingest.grid_commit"):
        _same_values(open_gridded(store), grid, 2)
    assert not caplog.records


def test_a_complete_store_reads_every_cycle_quietly(tmp_path, grid, caplog):
    store = tmp_path / "out" / "grid.zarr"
    state = _build(store, grid, 3)
    assert state["store"] == "grid.zarr"
    with caplog.at_level(logging.WARNING, logger="probcast.ingest.grid_commit"):
        _same_values(open_gridded(store), grid, 3)
        _same_values(open_grid(store), grid, 3)
    assert not caplog.records


def _stale_store(store, grid: xr.Dataset) -> None:
    """3 cycles, consolidated metadata left at 2 (as another tool might leave a store)."""
    grid.isel({FRT: [0, 1]}).to_zarr(store, mode="w", consolidated=True, zarr_format=2)
    grid.isel({FRT: [2]}).to_zarr(store, append_dim=FRT, consolidated=False)


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("grid.zarr", None),  # no state: not a data build store
        ("grid.zarr", {"cycles": ["2021-03-01T00:00Z"], "store": "other.zarr"}),
        ("subset.zarr", {"cycles": ["2021-03-01T00:00Z"], "grid": ""}),  # grid.zarr's state
    ],
)
def test_a_store_without_a_state_of_its_own_reads_as_before(tmp_path, grid, name, state):
    store = tmp_path / "out" / name
    _stale_store(store, grid)
    if state is not None:
        (store.parent / STATE).write_text(json.dumps(state))
    _same_values(open_gridded(store), grid, 3)  # each array's own metadata, as always


@pytest.mark.parametrize(
    ("cycles", "says"),
    [
        (["2021-03-01T00:00Z", "2021-03-05T00:00Z"], "begins with 2021-03-01T00:00Z .. 2021-03-02"),
        ([f"2021-03-0{d}T00:00Z" for d in (1, 2, 3, 4)], "the store holds only 3"),
    ],
)
def test_a_state_that_disagrees_with_its_store_is_refused(tmp_path, grid, cycles, says):
    store = tmp_path / "out" / "grid.zarr"
    _build(store, grid, 3)
    (store.parent / STATE).write_text(json.dumps({"cycles": cycles, "grid": ""}))
    with pytest.raises(GriddedReadError) as err:
        open_gridded(store)
    msg = str(err.value)
    assert msg.startswith(f"{store}: the store and grid-state.json next to it disagree: ")
    assert f"{len(cycles)} reference time(s) committed" in msg and says in msg
    assert "run `probcast data build` again" in msg


def test_an_unreadable_state_is_refused(tmp_path, grid):
    store = tmp_path / "out" / "grid.zarr"
    _build(store, grid, 2)
    (store.parent / STATE).write_text('{"cycles": ["2021-03-01T00:00Z"')  # cut short
    with pytest.raises(GriddedReadError, match=r"grid-state.json: cannot read which reference"):
        open_gridded(store)
