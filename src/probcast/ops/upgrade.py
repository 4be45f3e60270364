"""NWP model upgrades: the input's metadata changed between two cycles.

A new version of the input model (a new IFS cycle, a changed resolution) changes the
statistics the model was trained on. It usually shows in the input's metadata: GRIB keys
(``edition``, ``centre``, ``generatingProcessIdentifier``), attributes of a NetCDF/Zarr grid
(the same names, or cfgrib's ``GRIB_<key>``, or ``model_version``), the key/value metadata of
a Parquet table, or a column of a station table. After each cycle's ``acquire`` step,
:func:`check_input` reads those keys (``nwp: {keys: [...]}`` in the pipeline file adds
to the defaults; ``nwp: {check: false}`` turns it off), records the signature in the state
store (:mod:`probcast.ops.lineage`) and, when it differs from the previous cycle's, records
the change as an upgrade and logs a warning. Distribution drift without a metadata change is
the job of ``probcast monitor`` (input drift against the training statistics).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from probcast.ops import lineage
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id
from probcast.ops.state import StateStore

log = logging.getLogger(__name__)

DEFAULT_KEYS = ("edition", "centre", "generatingProcessIdentifier", "model_version")
"""Metadata keys compared between cycles (plus those of ``nwp: {keys: [...]}``)."""
MAX_MESSAGES = 200
"""GRIB messages read per input (the metadata of an NWP run is the same in every one)."""
MAX_VALUES = 20


def keys_of(block: Mapping[str, Any], where: str = "pipeline") -> tuple[str, ...]:
    """The keys to compare (``()`` when the check is off) from the ``nwp:`` block.

    Raises:
        PipelineError: Unknown fields or keys that are not a list of names.
    """
    unknown = set(block) - {"keys", "check"}
    if unknown:
        raise PipelineError(f"{where}: nwp: unknown keys {sorted(unknown)}; known: check, keys")
    if not block.get("check", True):
        return ()
    extra = block.get("keys") or []
    if not isinstance(extra, list) or not all(isinstance(k, str) and k for k in extra):
        raise PipelineError(f"{where}: nwp.keys must be a list of metadata key names")
    return tuple(dict.fromkeys([*DEFAULT_KEYS, *extra]))


def _add(out: dict[str, set[str]], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    out.setdefault(key, set()).add(str(value))


def _grib(path: Path, keys: Iterable[str], out: dict[str, set[str]]) -> None:
    import eccodes

    from probcast.sources.grib import message_headers

    with open(path, "rb") as fh:
        for handle in itertools.islice(message_headers(fh, str(path)), MAX_MESSAGES):
            for key in keys:
                try:
                    _add(out, key, eccodes.codes_get_string(handle, key))
                except Exception:  # eccodes raises per missing key
                    continue


def _attrs(attrs: Mapping[str, Any], keys: Iterable[str], out: dict[str, set[str]]) -> None:
    for key in keys:
        for name in (key, f"GRIB_{key}"):
            if name in attrs:
                _add(out, key, attrs[name])


def _grid(path: Path, fmt: str, keys: tuple[str, ...], out: dict[str, set[str]]) -> None:
    import xarray as xr

    if fmt == "zarr":
        ds = xr.open_zarr(path, decode_times=False)
    else:
        ds = xr.open_dataset(path, decode_times=False)
    with ds:
        _attrs(ds.attrs, keys, out)
        for var in ds.data_vars.values():
            _attrs(var.attrs, keys, out)


def _table(path: Path, keys: tuple[str, ...], out: dict[str, set[str]]) -> None:
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        meta = {k.decode(): v for k, v in (schema.metadata or {}).items()}
        _attrs(meta, keys, out)
        columns = [k for k in keys if k in schema.names]
        frame = pd.read_parquet(path, columns=columns) if columns else None
    else:
        header = pd.read_csv(path, nrows=0).columns
        columns = [k for k in keys if k in header]
        frame = pd.read_csv(path, usecols=columns) if columns else None
    for key in columns:
        assert frame is not None
        for value in pd.unique(frame[key].dropna())[:MAX_VALUES]:
            _add(out, key, value)


def input_signature(path: str | Path, keys: Iterable[str] = DEFAULT_KEYS) -> dict[str, list[str]]:
    """``{key: sorted values}`` of the metadata keys found in an input (absent keys left out).

    Args:
        path: A station table (CSV/Parquet) or a grid (GRIB, NetCDF, Zarr).
        keys: The metadata keys to read.
    """
    from probcast.ingest.gridded import sniff_format

    path, keys = Path(path), tuple(keys)
    found: dict[str, set[str]] = {}
    if path.suffix.lower() in (".csv", ".parquet", ".pq", ".gz"):
        _table(path, keys, found)
    else:
        fmt = sniff_format(path)
        if fmt == "grib":
            _grib(path, keys, found)
        elif fmt in ("netcdf4", "netcdf3", "zarr"):
            _grid(path, fmt, keys, found)
    return {k: sorted(v)[:MAX_VALUES] for k, v in sorted(found.items())}


def changes_between(
    before: Mapping[str, list[str]], after: Mapping[str, list[str]]
) -> dict[str, list[Any]]:
    """``{key: [before, after]}`` of the keys whose values differ (``None``: absent)."""
    keys = sorted(set(before) | set(after))
    return {
        k: [before.get(k), after.get(k)]
        for k in keys
        if list(before.get(k) or []) != list(after.get(k) or [])
    }


def check_input(pipe: Pipeline, cycle: Any, store: StateStore) -> dict[str, list[Any]]:
    """Record the cycle's input signature; return (and record, and warn of) an upgrade.

    Never fails the cycle: an input whose metadata cannot be read is logged and skipped.
    """
    keys = keys_of(pipe.nwp, pipe.name)
    if not keys:
        return {}
    cid = cycle_id(cycle)
    try:
        signature = input_signature(pipe.input_path(cycle), keys)
        previous = lineage.previous_signature(store, cid)
        changes = changes_between(previous[1], signature) if previous else {}
        lineage.record_input(store, cid, signature, changes)
    except Exception as err:  # a metadata check must not fail the cycle
        log.warning("%s: input metadata not checked: %s: %s", cid, type(err).__name__, err)
        return {}
    if changes and previous:
        described = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changes.items())
        log.warning(
            "%s: NWP input upgrade since cycle %s (%s): check the model's skill, retrain",
            cid,
            previous[0],
            described,
        )
    return changes
