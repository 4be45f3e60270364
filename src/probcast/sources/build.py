"""``probcast data build``: NWP archive + observations -> the canonical station table.

Output folder::

    OUT/init_date=YYYY-MM-DD/cycle_HHMM.parquet   one file per cycle (atomic)
    OUT/table.parquet                             all cycles, for ``probcast train``
    OUT/build-summary.json                        cycles, missing data, QC counts
    OUT/_inventory/                               cached archive inventories

Incremental: a cycle whose file exists is skipped, so a rerun over a longer period
appends only the new cycles and an interrupted build resumes; a cycle written while files
could not be read (not yet published, HTTP error, another run's) is rebuilt and replaced
atomically (:mod:`probcast.sources.partitions`). A cycle without NWP data is reported and
written nowhere (a rerun retries it); a build with none at all fails after writing its
summary. A cycle without observations is written (forecasts are still useful) and reported.

With ``area`` in the spec, stations outside it are left out and listed in the summary.
Cycles run one after the other in this process, or, with ``workers > 1`` or a
``scheduler`` address, in parallel on Dask (:mod:`probcast.sources.parallel`); each cycle is
computed by :func:`run_cycle` with the observations of its own time window
(:func:`obs_window`) either way, so both give the same files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probcast import io
from probcast.sources import fs, nwp_source, partitions, truth_reader
from probcast.sources.config import BuildSpec
from probcast.sources.era5 import truth_window
from probcast.sources.errors import SourceError, WrongRunError
from probcast.sources.obs import GRIDDED_TRUTH, ObsData, check_some_in_range
from probcast.sources.pair import pair
from probcast.sources.partitions import compact, with_periods
from probcast.sources.qc import RANGES, apply_qc
from probcast.sources.variables import needed, relative_humidity


@dataclass
class BuildResult:
    """What a build did."""

    out: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_nwp: dict[str, list[str]] = field(default_factory=dict)
    missing_obs: list[str] = field(default_factory=list)
    incomplete: dict[str, list[str]] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    area: list[float] | None = None
    outside_area: list[str] = field(default_factory=list)
    output: str = "table"  # or "zarr-grid": ``rows`` then counts reference times

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (also written to ``build-summary.json``)."""
        return {
            "out": str(self.out),
            "cycles_written": self.written,
            "cycles_skipped_existing": self.skipped,
            "cycles_missing_nwp": self.missing_nwp,
            "cycles_without_observations": self.missing_obs,
            "cycles_incomplete": self.incomplete,
            "cycles_rebuilt": self.rebuilt,
            "qc_removed": self.removed,
            "notes": self.notes,
            "rows": self.rows,
            "output": self.output,
            "area": self.area,
            "stations_outside_area": self.outside_area,
        }


@dataclass
class CycleOutcome:
    """What computing one cycle gave (small: sent back by parallel workers).

    Attributes:
        key: Cycle, ``YYYY-MM-DDTHH:MMZ``.
        written: Whether its partition was written (False: no NWP data, or ``kept``).
        missing: Notes of what was missing.
        without_obs: Whether no observation matched any of its rows.
        unavailable: The notes of ``missing`` about files that could not be read.
        kept: A rebuild found fewer forecast values than the partition already there,
            which was kept.
    """

    key: str
    written: bool
    missing: list[str]
    without_obs: bool = False
    unavailable: list[str] = field(default_factory=list)
    kept: bool = False


def read_truth(spec: BuildSpec, stations: pd.DataFrame | None) -> ObsData:
    """Read every truth file of ``spec``."""
    name = spec.truth["source"]
    so = spec.truth.get("storage_options")
    urls = fs.expand(spec.truth["paths"], so)
    reader = truth_reader(name)
    if name in GRIDDED_TRUTH:
        if stations is None or stations[["latitude", "longitude"]].isna().any().any():
            raise SourceError(
                f"{spec.source}: stations: ERA5 truth needs every station with latitude "
                "and longitude"
            )
        return reader(urls, stations, so, **truth_window(spec))  # type: ignore[no-any-return]
    return ObsData.concat(reader(u, so, **spec.truth.get("options", {})) for u in urls)


def _stations(spec: BuildSpec, truth_meta: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    cols = ["station", "name", "latitude", "longitude", "altitude"]
    given = pd.DataFrame(spec.stations, columns=cols) if spec.stations else None
    if truth_meta is None or truth_meta.empty:
        meta = given if given is not None else pd.DataFrame(columns=cols)
    else:
        meta = truth_meta.copy()
        if given is not None:
            meta = given[["station"]].merge(meta, on="station", how="left")
            for c in cols[1:]:  # values in the spec override the source's metadata
                meta[c] = given[c].where(given[c].notna(), meta[c]).to_numpy()
    notes = []
    no_pos = meta["latitude"].isna() | meta["longitude"].isna()
    for sid in meta.loc[no_pos, "station"]:
        notes.append(
            f"station {sid}: no usable position; skipped (give latitude/longitude in 'stations')"
        )
    return meta.loc[~no_pos].reset_index(drop=True), notes


def _in_area(spec: BuildSpec, meta: pd.DataFrame, result: BuildResult) -> pd.DataFrame:
    """The stations inside ``spec.area``; the others are listed in ``result``."""
    if spec.area is None:
        return meta
    inside = spec.area.contains(
        meta["latitude"].to_numpy(dtype="float64"), meta["longitude"].to_numpy(dtype="float64")
    )
    result.area = spec.area.as_list()
    result.outside_area = [str(s) for s in meta.loc[~inside, "station"]]
    if result.outside_area:
        result.notes.append(
            f"{len(result.outside_area)} station(s) outside area {result.area}: left out"
        )
    if not inside.any() and len(meta):
        raise SourceError(
            f"{spec.source}: area: {result.area} ([north, west, south, east]) holds none of "
            f"the {len(meta)} station(s)"
        )
    return meta.loc[inside].reset_index(drop=True)


def derive_rh(obs: pd.DataFrame, variables: Iterable[str]) -> pd.DataFrame:
    """Add ``obs_rh`` from the *quality-controlled* ``obs_t2m`` and ``obs_td2m``.

    Only when ``rh`` is wanted and the truth has no ``obs_rh`` of its own. Computed after
    :func:`probcast.sources.qc.apply_qc`, so a temperature or dew point that QC removed
    leaves no humidity behind (NaN where either input is NaN); the inputs passed the
    ``consistency`` check (td <= t + 0.1 K), so the result stays within the rh range.

    Args:
        obs: Observations after quality control (``obs_<var>`` columns).
        variables: The variables of the build.

    Returns:
        ``obs`` with ``obs_rh`` added, or ``obs`` itself when nothing is to be derived.
    """
    if "rh" not in variables or "obs_rh" in obs or not {"obs_t2m", "obs_td2m"} <= set(obs):
        return obs
    t = obs["obs_t2m"].to_numpy(dtype="float64")
    td = obs["obs_td2m"].to_numpy(dtype="float64")
    return obs.assign(obs_rh=relative_humidity(t, td))


def obs_window(spec: BuildSpec, obs: pd.DataFrame, init: pd.Timestamp) -> pd.DataFrame:
    """The observations cycle ``init`` can pair with.

    Its valid times widened by the accumulation period before the first one and the match
    tolerance, with an hour or two to spare on each side.
    """
    match = pd.Timedelta(minutes=spec.match_minutes)
    lo = init + pd.Timedelta(hours=min(spec.lead_times) - spec.accumulation_hours - 2) - match
    hi = init + pd.Timedelta(hours=max(spec.lead_times) + 1) + match
    times = obs["time"]
    return obs[(times >= lo) & (times <= hi)]


def open_source(spec: BuildSpec, out: str | os.PathLike[str]) -> Any:
    """The NWP source of ``spec`` (an archive caches its inventory in ``OUT/_inventory``)."""
    opts = dict(spec.nwp)
    name = opts.pop("source")
    cls = nwp_source(name)
    so = opts.pop("storage_options", None)
    if name == "archive":
        return cls(
            opts["paths"],
            storage_options=so,
            cache_dir=Path(out) / "_inventory",
            method=opts.get("method", "nearest"),
            area=spec.area,
        )
    kwargs = {k: opts[k] for k in ("base_url", "model", "stream") if k in opts}
    return cls(storage_options=so, **kwargs)


def _cycle_table(
    spec: BuildSpec, source: Any, init: pd.Timestamp, meta: pd.DataFrame, obs: pd.DataFrame
) -> tuple[pd.DataFrame | None, list[str], list[str]]:
    """``(table or None without NWP data, missing notes, unavailable-file notes)``."""
    lat = meta["latitude"].to_numpy(dtype="float64")
    lon = meta["longitude"].to_numpy(dtype="float64")
    try:
        cf = source.cycle(
            init,
            spec.lead_times,
            needed(spec.variables),
            lat,
            lon,
            accumulation_hours=spec.accumulation_hours,
        )
    except WrongRunError as err:  # a source that does not note it itself (an archive)
        return None, [str(err)], [str(err)]
    unavailable = list(getattr(cf, "unavailable", []))
    fc, missing = cf.table(
        list(meta["station"]),
        spec.lead_times,
        spec.variables,
        accumulation_hours=spec.accumulation_hours,
    )
    fc_cols = [c for c in fc.columns if c.startswith("fc_")]
    if fc.empty or fc[fc_cols].isna().all().all():
        return None, cf.missing or ["no forecast value for any station"], unavailable
    fc = fc.merge(meta[["station", "latitude", "longitude", "altitude"]], on="station")
    if cf.orog is not None:
        dz = meta["altitude"].to_numpy(dtype="float64") - cf.orog
        fc["stat_dz"] = fc["station"].map(dict(zip(meta["station"], dz, strict=True)))
    table = pair(
        fc,
        obs,
        spec.variables,
        accumulation_hours=spec.accumulation_hours,
        match_minutes=spec.match_minutes,
    )
    return table, missing, unavailable


def run_cycle(
    spec: BuildSpec,
    source: Any,
    init: pd.Timestamp,
    meta: pd.DataFrame,
    obs: pd.DataFrame,
    out: str | os.PathLike[str],
) -> CycleOutcome:
    """Compute one cycle and write its partition atomically (when it has NWP data).

    A partition already there (a rebuild of a cycle written incomplete) is replaced only
    when the new table has at least as many forecast values; otherwise it is kept.
    """
    key = f"{init:%Y-%m-%dT%H:%M}Z"
    path = partitions.partition(Path(out), init)
    table, missing, unavailable = _cycle_table(spec, source, init, meta, obs)
    old = partitions.values(path) if path.exists() else None
    if table is None or (old is not None and partitions.values(table) < old):
        return CycleOutcome(key, False, missing, unavailable=unavailable, kept=old is not None)
    obs_cols = [c for c in table.columns if c.startswith("obs_")]
    without_obs = bool(table[obs_cols].isna().all().all())
    partitions.write(path, with_periods(table, spec.accumulation_hours), missing, unavailable)
    return CycleOutcome(key, True, missing, without_obs, unavailable)


def build(
    spec: BuildSpec,
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    scheduler: str | None = None,
) -> BuildResult:
    """Run a build (see the module docstring).

    Args:
        spec: The build spec.
        out: Output folder.
        workers: Local processes computing cycles in parallel (1: in this process).
        scheduler: Address of a ``dask.distributed`` scheduler to compute cycles on
            (its workers must see ``out`` and the archive).

    Raises:
        SourceError: On a configuration or source problem (a one-line message).
    """
    if workers < 1:
        raise SourceError(f"workers: {workers} (expected >= 1)")
    if spec.output.get("kind") == "zarr-grid":
        from probcast.sources.grid_build import build_grid

        if workers > 1 or scheduler:
            raise SourceError(
                f"{spec.source}: output: zarr-grid is built one cycle at a time (each cycle "
                "is appended to one Zarr store); run it without --workers/--scheduler"
            )

        return build_grid(spec, out)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.sweep(out)
    hours = {"tp": float(spec.accumulation_hours)} if "tp" in spec.variables else {}
    partitions.check_periods(out, hours)
    result = BuildResult(out=out)
    if spec.truth["source"] in GRIDDED_TRUTH:  # gridded truth: sampled at the stations
        meta, notes = _stations(spec, None)
        meta = _in_area(spec, meta, result)
        truth = read_truth(spec, meta)
    else:
        truth = read_truth(spec, None)
        meta, notes = _stations(spec, truth.stations)
        meta = _in_area(spec, meta, result)
    result.notes = truth.notes + notes + result.notes
    if meta.empty:
        raise SourceError(f"{spec.source}: no station with a position to build for")
    obs = truth.obs[truth.obs["station"].isin(meta["station"])]
    where = spec.truth.get("paths") or spec.truth["source"]  # all out of range: wrong units
    units = (spec.truth.get("options") or {}).get("units")
    check_some_in_range(obs, where, RANGES, units=units, variables=needed(spec.variables))
    obs, removed = apply_qc(obs)
    obs = derive_rh(obs, spec.variables)
    result.removed = pd.concat([truth.removed, removed], ignore_index=True).to_dict("records")  # type: ignore[assignment]
    source = open_source(spec, out)
    todo = _todo(source.cycles(spec.start, spec.end, spec.cycles), out, result)
    outcomes: Iterable[CycleOutcome]
    if (workers > 1 or scheduler) and len(todo) > 1:
        from probcast.sources.parallel import run_cycles

        if hasattr(source, "inventory"):
            source.inventory()  # scanned once here, cached in OUT/_inventory for the workers
        outcomes = run_cycles(spec, out, todo, meta, obs, workers=workers, scheduler=scheduler)
    else:
        outcomes = (
            run_cycle(spec, source, init, meta, obs_window(spec, obs, init), out) for init in todo
        )
    for outcome in outcomes:
        _record(outcome, result)
    result.rows = compact(out)
    io.write_json(out / "build-summary.json", result.summary())
    _check_some_nwp(spec, result)
    return result


def _todo(inits: Iterable[pd.Timestamp], out: Path, result: BuildResult) -> list[pd.Timestamp]:
    """Cycles to compute: new ones, and those written while files were unavailable."""
    todo = []
    for init in inits:
        key, path = f"{init:%Y-%m-%dT%H:%M}Z", partitions.partition(out, init)
        state = partitions.read_state(path) if path.exists() else None
        if state is None or state.unavailable or not state.readable:
            todo.append(init)
            result.rebuilt += [key] if state else []
        else:
            result.skipped.append(key)
        if state is not None and state.missing:
            result.incomplete[key] = state.missing
    return todo


def _record(outcome: CycleOutcome, result: BuildResult) -> None:
    """Add a computed cycle's outcome to ``result``."""
    if outcome.kept:  # the earlier partition stays, and so does its entry in incomplete
        result.notes.append(
            f"cycle {outcome.key}: rebuilt to fetch files missing before, but got fewer "
            "forecast values; the partition of the earlier build is kept"
        )
    elif not outcome.written:
        result.missing_nwp[outcome.key] = outcome.missing
    else:
        result.incomplete.pop(outcome.key, None)
        if outcome.missing:
            result.incomplete[outcome.key] = outcome.missing
        if outcome.without_obs:
            result.missing_obs.append(outcome.key)
        result.written.append(outcome.key)


def _check_some_nwp(spec: BuildSpec, result: BuildResult) -> None:
    """Fail a build in which no cycle has NWP data, after its summary is written."""
    if not (result.written or result.skipped or result.rebuilt):
        key, why = next(iter(result.missing_nwp.items()), ("", ["no cycle in the period"]))
        raise SourceError(
            f"{spec.source}: no NWP data for any of the {len(result.missing_nwp)} cycle(s) "
            f"of the period; nothing written (see {result.out / 'build-summary.json'}); "
            f"{key + ': ' if key else ''}{(why or ['?'])[0]}"
        )
