"""The Zarr store of a grid build: atomic creation, append per cycle, resume after a crash.

``grid-state.json`` next to the store lists the reference times committed, the grid's
signature and the store's name. It is written (atomically) after each append, so it never
names a cycle the store lacks; a store longer than it along ``forecast_reference_time`` (an
append that was interrupted, or that finished just before the state was written) is cut
back to the committed length before the next append. Until then readers see only the
committed cycles (:mod:`probcast.ingest.grid_commit`): the consolidated metadata is written
only at the end of the creation, of each append and of a cut, and the state after it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from probcast import io, periods
from probcast.ingest.grid_commit import STATE, dims_of, state_path
from probcast.ingest.normalise import FP, FRT
from probcast.sources.errors import SourceError

__all__ = ["STATE", "append_cycle", "committed", "grid_signature"]

TIME_ENCODING = {"units": "minutes since 1970-01-01 00:00:00", "dtype": "int64"}


def grid_signature(ds: xr.Dataset) -> str:
    """A short description of the grid (dims, shape, first and last node)."""
    spatial = [str(d) for d in ds.dims if d not in (FRT, FP)]
    shape = "x".join(str(ds.sizes[d]) for d in spatial)
    lat = np.asarray(ds["latitude"].values).ravel()
    lon = np.asarray(ds["longitude"].values).ravel()
    return (
        f"{','.join(spatial)} {shape} lat {lat[0]:.4f}..{lat[-1]:.4f} "
        f"lon {lon[0]:.4f}..{lon[-1]:.4f}"
    )


def committed(store: Path) -> dict[str, Any]:
    """The committed state ``{cycles: [...], grid: str}``; the store is cut back to it."""
    path = state_path(store)
    if path.exists():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise SourceError(f"{path}: not valid JSON ({err}); remove it and {store}") from None
    elif store.exists():  # created (atomically) but the state was not written yet
        with xr.open_zarr(store, consolidated=False) as ds:
            state = {"cycles": [f"{t:%Y-%m-%dT%H:%M}Z" for t in ds.indexes[FRT]], "grid": ""}
            state["grid"] = grid_signature(ds)
    else:
        return {"cycles": [], "grid": ""}
    if store.exists():
        _truncate(store, len(state["cycles"]))
    return state


def _truncate(store: Path, n: int) -> None:
    """Cut every array along the reference time to ``n``.

    The dimensions come from the Zarr metadata, not xarray, so that arrays left with
    different lengths by an interrupted append are handled too.
    """
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    for _, arr in group.arrays():
        dims = dims_of(arr)
        if FRT in dims and arr.shape[dims.index(FRT)] != n:
            shape = list(arr.shape)
            shape[dims.index(FRT)] = n
            arr.resize(tuple(shape))
    zarr.consolidate_metadata(str(store))


def append_cycle(
    store: Path, ds: xr.Dataset, key: str, state: dict[str, Any], signature: str
) -> dict[str, Any]:
    """Add one cycle to the store (create it atomically first) and commit it in the state."""
    if not state["cycles"] or not store.exists():
        encoding = {FRT: TIME_ENCODING, "valid_time": TIME_ENCODING}
        encoding[FP] = {"units": "minutes", "dtype": "int64"}
        with io.atomic_path(store) as tmp:
            ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2, encoding=encoding)
    else:
        _same_periods(store, ds)
        ds.to_zarr(store, append_dim=FRT, consolidated=True)
    new = {"cycles": [*state["cycles"], key], "grid": signature, "store": store.name}
    io.write_json(state_path(store), new)
    return new


def _same_periods(store: Path, ds: xr.Dataset) -> None:
    """Refuse a cycle of another statistic period than the store's (the spec changed)."""
    with xr.open_zarr(store, consolidated=True) as old:
        before = periods.of(old.attrs, str(store))
    now = periods.of(ds.attrs, "this build")
    if before != now:
        raise SourceError(
            f"{store}: holds statistic periods {before or 'none'} (hours), this build's are "
            f"{now or 'none'} (accumulation_hours changed); build into a new folder"
        )
