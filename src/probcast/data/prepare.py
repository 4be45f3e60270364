"""Turn a registry dataset into canonical train/test data with the fixed split.

Each benchmark dataset has one module in ``probcast.data.datasets`` that registers a
converter with :func:`register`. A converter reads the fetched files and returns the whole
dataset in canonical form (station table or gridded ``xr.Dataset``) plus a validation report;
splitting, saving and the summary are shared here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import xarray as xr

from probcast import io, periods, progress
from probcast.data import registry
from probcast.ingest.tables import write_table
from probcast.split import grid_index_split, time_split


@dataclass
class Canonical:
    """A dataset in canonical form, before splitting.

    Attributes:
        data: Station table (see docs/data-model.md) or gridded forecast/truth Dataset.
        targets: Target variables (canonical names) in the dataset.
        report: Human-readable findings of validation and the repairs or exclusions applied.
    """

    data: pd.DataFrame | xr.Dataset
    targets: list[str]
    report: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """A dataset split into train and test, as written by :func:`prepare`."""

    name: str
    kind: str  # "station" or "grid"
    train: pd.DataFrame | xr.Dataset
    test: pd.DataFrame | xr.Dataset
    targets: list[str]
    report: list[str]
    paths: dict[str, Path] = field(default_factory=dict)


Converter = Callable[[dict[str, Path]], Canonical]
_CONVERTERS: dict[str, Converter] = {}


def register(name: str) -> Callable[[Converter], Converter]:
    """Register the converter of dataset ``name``."""

    def deco(fn: Converter) -> Converter:
        _CONVERTERS[name] = fn
        return fn

    return deco


def _load_converters() -> None:
    from probcast.data import datasets

    for mod in pkgutil.iter_modules(datasets.__path__):
        importlib.import_module(f"{datasets.__name__}.{mod.name}")


def converter(name: str) -> Converter:
    """Return the converter of ``name``."""
    _load_converters()
    registry.get_info(name)
    if name not in _CONVERTERS:
        raise registry.DatasetError(
            f"dataset {name!r} is a format sample with no truth pairing; it cannot be prepared"
            f" (preparable: {', '.join(sorted(_CONVERTERS))})"
        )
    return _CONVERTERS[name]


def preparable() -> list[str]:
    """Names of the datasets that can be prepared."""
    _load_converters()
    return sorted(_CONVERTERS)


def split(name: str, canonical: Canonical) -> tuple[object, object]:
    """Apply the fixed benchmark split of dataset ``name``."""
    info = registry.get_info(name)
    sp = info.split or {}
    if isinstance(canonical.data, xr.Dataset):
        if "test_start_index" not in sp:
            # No fixed split (e.g. icp-wrf-precip-grid, a set for gridded inference): every
            # case is test data, none is training data.
            canonical.report.append("no fixed train/test split: all cases are test cases")
            return canonical.data.isel(forecast_reference_time=slice(0, 0)), canonical.data
        return grid_index_split(canonical.data, int(sp["test_start_index"]))  # type: ignore[call-overload]
    return time_split(canonical.data, pd.Timestamp(str(sp["test_start"]), tz="UTC"))


def prepare(name: str, out_dir: Path | None = None) -> Prepared:
    """Fetch, convert, validate and split dataset ``name``; save train/test.

    Args:
        name: Registry id.
        out_dir: Where to write; default ``<cache>/prepared/<name>``.

    Returns:
        The prepared dataset, with the written paths.
    """
    convert = converter(name)  # unknown or non-preparable names fail before any download
    with progress.bar(f"prepare {name}: convert", 3) as shown:
        canonical = convert(registry.fetch(name))
        shown.advance(1, f"prepare {name}: split")
        train, test = split(name, canonical)
        stated = periods.parse(registry.get_info(name).periods, f"registry entry {name}")
        train, test = periods.recorded(train, stated), periods.recorded(test, stated)
        shown.advance(1, f"prepare {name}: write")
        paths, kind = _write(train, test, out_dir, name, canonical)
        shown.advance()
    return Prepared(name, kind, train, test, canonical.targets, canonical.report, paths)  # type: ignore[arg-type]


def _write(
    train: object, test: object, out_dir: Path | None, name: str, canonical: Canonical
) -> tuple[dict[str, Path], str]:
    """Write train, test (Parquet tables or NetCDF grids) and ``meta.json`` as one set.

    :func:`probcast.fileset.write_set`: ``meta.json`` goes into place last and out first,
    and the previous run's files (of either kind) are removed before the new ones move in,
    so a folder never holds a part of one run beside a part of another; a folder without
    ``meta.json`` holds an interrupted run (prepare again).
    """
    from probcast.fileset import write_set

    out = Path(out_dir) if out_dir else registry.cache_dir() / "prepared" / name
    grid = isinstance(train, xr.Dataset)
    kind, suffix, other = ("grid", ".nc", ".parquet") if grid else ("station", ".parquet", ".nc")
    writers: dict[str, Callable[[Path], object]] = {
        f"{part}{suffix}": partial(_write_part, data)
        for part, data in (("train", train), ("test", test))
    }
    meta = {"name": name, "kind": kind, "targets": canonical.targets, "report": canonical.report}
    writers["meta.json"] = partial(io.write_json, data=meta)
    written = write_set(out, writers, stale=[f"train{other}", f"test{other}"])
    paths = {part: written[f"{part}{suffix}"] for part in ("train", "test")}
    return {**paths, "meta": written["meta.json"]}, kind


def _write_part(data: object, path: Path) -> None:
    """Write a part: a gridded Dataset to NetCDF, a station table to Parquet (atomically)."""
    if isinstance(data, xr.Dataset):
        from probcast.ingest.gridded import write_dataset

        write_dataset(data, path)
    else:
        write_table(data, path)  # type: ignore[arg-type]
