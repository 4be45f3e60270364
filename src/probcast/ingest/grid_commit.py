"""Read only the committed cycles of a Zarr store that ``probcast data build`` appends to.

``data build`` with ``output: {kind: zarr-grid}`` (:mod:`probcast.sources.grid_store`)
appends each cycle to ``OUT/grid.zarr`` in place and then records it in
``OUT/grid-state.json``. An append that is interrupted (killed, disk full) leaves arrays
longer than the state says, some with the new cycle half written, until a rerun cuts the
store back. Every reader (:func:`probcast.ingest.encoding.open_zarr`) therefore sees only
the committed cycles of a store with such a state next to it:

* the store is opened through its consolidated metadata, which probcast rewrites (one
  atomic file) only at the end of the creation, of each append and of a repair, so it
  describes whole cycles: the committed ones, or one more whose state was not written yet;
* the ``forecast_reference_time`` axis is cut to the state's cycles, which must be the
  store's first reference times (otherwise the store and the state disagree: refused);
* when the store holds more reference times than the state commits (in its consolidated
  metadata or in any array's own), a warning names the store, both counts and the repair.

A store without a state next to it (not written by ``data build``), or whose state names
another store, is read as before. On a complete store this costs reading the state and
each array's metadata once (milliseconds).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
import zarr

from probcast.ingest.errors import GriddedReadError
from probcast.ingest.normalise import FRT

STATE = "grid-state.json"
"""The state ``data build`` writes next to its store: ``{cycles, grid, store}``."""
STORE = "grid.zarr"
"""The store a state names when it has no ``store`` key (states written before it)."""
KEY = "%Y-%m-%dT%H:%MZ"
"""How a cycle (its reference time, UTC) is written in the state."""

log = logging.getLogger(__name__)


def state_path(store: Path) -> Path:
    """Where the state of ``store`` is (next to it)."""
    return store.parent / STATE


def dims_of(arr: zarr.Array) -> tuple[str, ...]:
    """The dimension names of a Zarr v2 (xarray's attribute) or v3 array."""
    names = getattr(arr.metadata, "dimension_names", None)  # Zarr v3
    return tuple(names or arr.attrs.get("_ARRAY_DIMENSIONS", ()))  # type: ignore[arg-type]


def commits(path: Any) -> list[str] | None:
    """The cycles the state next to the store at ``path`` commits.

    Args:
        path: A store folder, or an fsspec mapper of one.

    Returns:
        None when ``path`` is not a local store with a state of its own next to it.

    Raises:
        GriddedReadError: The state cannot be read.
    """
    store = local_path(path)
    if store is None or not state_path(store).is_file():
        return None
    state = state_path(store)
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
        cycles = data["cycles"] if data.get("store", STORE) == store.name else None
        if cycles is not None and not (
            isinstance(cycles, list) and all(isinstance(c, str) for c in cycles)
        ):
            raise ValueError("'cycles' is not a list of reference times")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise GriddedReadError(
            f"{state}: cannot read which reference times of {store} are committed "
            f"({type(err).__name__}: {err}); remove {store} and {state} and run "
            "`probcast data build` again"
        ) from None
    return cycles


def local_path(path: Any) -> Path | None:
    """The folder of a local store (a path, or an fsspec mapper of the local file system)."""
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    protocol = getattr(getattr(path, "fs", None), "protocol", ())
    local = {"file", "local"} & set(protocol if isinstance(protocol, tuple) else (protocol,))
    root = getattr(path, "root", None)
    return Path(root) if local and isinstance(root, str) else None  # remote: not written here


def consolidated(store: Path) -> bool:
    """Whether ``store`` has consolidated metadata (Zarr v2 ``.zmetadata`` or in v3)."""
    if (store / ".zmetadata").is_file():
        return True
    meta = store / "zarr.json"
    return meta.is_file() and bool(
        json.loads(meta.read_text(encoding="utf-8")).get("consolidated_metadata")
    )


def cut(ds: xr.Dataset, cycles: list[str], store: Path) -> xr.Dataset:
    """``ds`` (the store's consolidated view, decoded) cut to the committed ``cycles``.

    Raises:
        GriddedReadError: The store has fewer reference times than committed, or its
            first ones are not the committed cycles.
    """
    n = len(cycles)
    held = ds.sizes.get(FRT, 0)
    times = ds[FRT].values[:n] if FRT in ds.variables else None
    found = (
        list(pd.DatetimeIndex(times).strftime(KEY))
        if times is not None and times.dtype.kind == "M"
        else cycles
    )
    if held < n or found != cycles:
        has = f"holds only {held}" if held < n else f"begins with {_span(found)}"
        raise GriddedReadError(
            f"{store}: the store and {state_path(store).name} next to it disagree: "
            f"{n} reference time(s) committed ({_span(cycles)}), the store {has}; remove "
            "both and run `probcast data build` again"
        )
    present = max(held, _longest(store))
    if present > n:
        log.warning(
            "%s: reading the %d committed reference time(s) of %d present (%s): a `probcast "
            "data build` appending to it was interrupted (or is running); rerun it to repair "
            "the store",
            store,
            n,
            present,
            state_path(store).name,
        )
    return ds.isel({FRT: slice(0, n)}) if held > n else ds


def _longest(store: Path) -> int:
    """The longest reference-time axis of any array, from each array's own metadata."""
    group = zarr.open_group(str(store), mode="r", use_consolidated=False)
    lengths = [
        arr.shape[dims.index(FRT)] for _, arr in group.arrays() if FRT in (dims := dims_of(arr))
    ]
    return max(lengths, default=0)


def _span(cycles: list[str]) -> str:
    return f"{cycles[0]} .. {cycles[-1]}" if cycles else "none"
