"""A Parquet station table read in pieces: the source of out-of-core training.

:class:`ParquetSource` opens a Parquet file or a dataset directory (the output of
``probcast data build``: ``init_date=YYYY-MM-DD/cycle_HHMM.parquet``; a ``table.parquet``
next to the partitions is ignored) as a list of row groups, the unit of the shuffled read
order. Nothing is read whole: :meth:`ParquetSource.batches` yields one row group in
record batches of at most ``read_rows`` rows, already filtered to the wanted rows (usable
training rows before ``data.split_date``, then the fit, validation or all rows).

:meth:`ParquetSource.open` makes one narrow pass (keys, times, the ``fc_<var>``/``obs_<var>``
columns of known variables) to find the validation cut exactly as
:func:`probcast.split.validation_split` does on a table in memory, and which row groups hold
fit rows at all. It checks every record batch as a table in memory is checked
(:func:`checked`), and refuses a key that two batches of a file, or two files, hold among
their usable rows (:class:`~probcast.train.stream_keys.KeyLedger`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from probcast import periods
from probcast.features import resolve_targets
from probcast.ranges import clip_float_noise, ranged_variable
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES, range_error
from probcast.train.stream_keys import KEYS, KeyLedger
from probcast.validate import ValidationError, to_hours, to_utc, validate_keys

log = logging.getLogger(__name__)

_PARQUET = pads.ParquetFileFormat()
_LOCAL = pafs.LocalFileSystem()
PARTS = ("fit", "val", "all")
"""Row selections: fit rows, validation rows, all usable training rows (the refit)."""


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of a table: the file itself, or a directory's partitions.

    Raises:
        FileNotFoundError: ``path`` does not exist or a directory holds no Parquet file.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such Parquet file or dataset directory")
    files = sorted(path.glob("init_date=*/*.parquet")) or sorted(path.rglob("*.parquet"))
    files = [f for f in files if not any(p.startswith((".", "_")) for p in f.parts[-2:])]
    if not files:
        raise FileNotFoundError(f"{path}: no Parquet files (expected init_date=*/*.parquet)")
    return files


def estimated_gib(path: Path) -> float:
    """In-memory size of a Parquet table (rows x columns x 8 bytes) from its metadata."""
    total = 0
    for f in parquet_files(path):
        meta = pq.read_metadata(f)
        total += meta.num_rows * meta.num_columns * 8
    return total / 2**30


@dataclasses.dataclass
class ParquetSource:
    """Row groups of a Parquet table and the row selection of training.

    Attributes:
        path: The file or dataset directory.
        schema: Unified Arrow schema of all files.
        targets: Target variables.
        units: Every row group, as ``(file, row group index)``; its fragment is made when
            it is read (a fragment keeps its file's Parquet metadata, about 100 kB: kept for
            every row group of a large dataset, that grew with the table).
        unit_init: ``(min, max)`` init time of each row group's usable rows (NaT: none).
        split: ``data.split_date`` (UTC), or ``None``.
        cut: First validation init time, or ``None`` (no validation rows).
        read_rows: Largest record batch read at once.
        rows: Number of usable training rows (fit, validation and the rows between).
        periods: The statistic periods the files record (:func:`recorded_periods`).
    """

    path: Path
    schema: pa.Schema
    targets: list[str]
    units: list[tuple[str, int]]
    unit_init: list[tuple[Any, Any]]  # pd.Timestamp or pd.NaT
    split: pd.Timestamp | None
    cut: pd.Timestamp | None
    read_rows: int
    rows: int = 0
    periods: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def open(
        cls,
        path: str | Path,
        targets: str | Sequence[str] | None,
        split_date: str = "",
        val_fraction: float = 0.0,
        read_rows: int = 65_536,
    ) -> ParquetSource:
        """Open ``path`` and find the validation cut in one narrow pass.

        Raises:
            ValueError: A key column is missing, or the validation split is impossible
                (the message names the path).
            ValidationError: A record batch fails :func:`checked`, or two record batches
                (of one file or of two) share a key of usable rows (names the file(s)).
        """
        p = Path(path)
        files = parquet_files(p)
        try:
            schemas = [pq.read_schema(f) for f in files]
            schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise ValueError(f"{p}: the Parquet files have incompatible schemas: {err}") from err
        absent = [c for c in KEYS if c not in schema.names]
        if absent:
            raise ValueError(f"{p}: station table lacks column(s) {absent}")
        names = resolve_targets(schema.empty_table().to_pandas(), targets)
        metas = {str(f): pq.read_metadata(f) for f in files}
        units = [(f, g) for f, m in metas.items() for g in range(m.num_row_groups)]
        split = _utc(split_date) if split_date else None
        src = cls(p, schema, names, units, [], split, None, int(read_rows))
        src.periods = recorded_periods(files, schemas)
        ranged = [c for c in schema.names if ranged_variable(c)]
        narrow = ["init_time", "lead_time", *src._time_columns(), *src._target_columns(), *ranged]
        keys = KeyLedger()
        for u, (file, group) in enumerate(units):
            meta = metas[file]
            where = file if meta.num_row_groups == 1 else f"{file} (row group {group})"
            several = meta.num_row_groups > 1 or meta.num_rows > src.read_rows
            first, last = pd.NaT, pd.NaT
            for frame in src._frames(u, narrow, check=where):
                keys.add(frame, hashed=several)  # (one batch: validate_keys compared its rows)
                t = frame["init_time"]
                src.rows += len(t)
                if len(t):
                    first = t.min() if first is pd.NaT else min(first, t.min())
                    last = t.max() if last is pd.NaT else max(last, t.max())
            src.unit_init.append((first, last))
            if u + 1 == len(units) or units[u + 1][0] != file:
                keys.end_file(file)  # a key in two batches of the file
        keys.check_across(src._file_frames, str(p))  # a key in two files
        inits = keys.init_times()
        if not inits:
            raise ValueError(f"{p}: no usable training rows (raw forecast and an observation)")
        if val_fraction > 0:
            src.cut = _validation_cut(inits, val_fraction, p)
        log.info("%s: %d row groups in %d file(s), cut %s", p, len(units), len(files), src.cut)
        return src

    def _file_frames(self, file: str) -> Iterator[pd.DataFrame]:
        """Usable rows of every row group of ``file``: their keys, times and targets."""
        for unit, (name, _) in enumerate(self.units):
            if name == file:
                yield from self._frames(unit, KEYS)

    def _time_columns(self) -> list[str]:
        return ["valid_time"] if "valid_time" in self.schema.names else []

    def _target_columns(self) -> list[str]:
        return [f"{pre}{v}" for v in self.targets for pre in (FC_PREFIX, OBS_PREFIX)]

    def holds(self, unit: int, part: str) -> bool:
        """Whether row group ``unit`` can hold rows of ``part`` (from its init times)."""
        first, last = self.unit_init[unit]
        if first is pd.NaT:
            return False
        if self.cut is None or part == "all":
            return True
        return bool(first < self.cut) if part == "fit" else bool(last >= self.cut)

    def units_of(self, part: str) -> list[int]:
        """Row groups that can hold rows of ``part``."""
        if part not in PARTS:
            raise ValueError(f"row selection must be one of {PARTS}, got {part!r}")
        return [u for u in range(len(self.units)) if self.holds(u, part)]

    def batches(
        self, unit: int, part: str = "all", columns: Sequence[str] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Row group ``unit`` as frames of at most ``read_rows`` rows of ``part``.

        ``columns``: the columns to read (all by default; the key and time columns and the
        targets' ``fc_``/``obs_`` columns are always read, the row selection needs them).
        """
        cols = list(self.schema.names) if columns is None else list(columns)
        for frame in self._frames(unit, cols, part):
            if len(frame):
                yield frame

    def select(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the fit and the validation rows of usable rows ``frame``.

        Fit rows are initialised and valid before the cut (the leakage guard of
        :func:`probcast.split.validation_split`), validation rows initialised at or after it.
        """
        if self.cut is None:
            return np.ones(len(frame), dtype=bool), np.zeros(len(frame), dtype=bool)
        t = frame["init_time"]
        is_fit = (t < self.cut) & (frame["valid_time"] < self.cut)
        return is_fit.to_numpy(), (t >= self.cut).to_numpy()

    def record_batches(
        self, unit: int, part: str = "all", columns: Sequence[str] = ()
    ) -> Iterator[pa.RecordBatch]:
        """As :meth:`batches`, as Arrow record batches (no pandas frame).

        For tables whose ``init_time`` and ``valid_time`` are Arrow timestamps (see
        :func:`probcast.train.stream_transform.arrow_ready`): the row selection is computed
        on integer nanoseconds and applied by one Arrow filter (none when all rows stay).
        """
        from probcast.train.stream_transform import nanoseconds

        fc = [FC_PREFIX + v for v in self.targets]
        obs = [OBS_PREFIX + v for v in self.targets]
        for rb in self._read(unit, columns):
            keep = np.ones(rb.num_rows, dtype=bool)
            for c in fc:
                keep &= _present(rb.column(c))
            keep &= np.logical_or.reduce([_present(rb.column(c)) for c in obs])
            init, valid = (nanoseconds(rb.column(c)) for c in ("init_time", "valid_time"))
            if self.split is not None:  # as in pandas, a missing time compares False
                keep &= _before(init, self.split) & _before(valid, self.split)
            if part == "fit" and self.cut is not None:
                keep &= _before(init, self.cut) & _before(valid, self.cut)
            elif part == "val":
                keep &= _after(init, self.cut)
            if keep.all():
                yield rb
            elif keep.any():
                yield rb.filter(pa.array(keep))

    def _read(self, unit: int, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """Record batches of row group ``unit``: ``columns`` and those the selection needs."""
        wanted = {*KEYS, *self._time_columns(), *self._target_columns(), *columns}
        read = [c for c in self.schema.names if c in wanted]  # in the table's order
        file, group = self.units[unit]
        fragment = _PARQUET.make_fragment(file, _LOCAL, row_groups=[group])
        yield from fragment.to_batches(schema=self.schema, columns=read, batch_size=self.read_rows)

    def _frames(
        self, unit: int, columns: Sequence[str], part: str = "all", check: str = ""
    ) -> Iterator[pd.DataFrame]:
        """Usable rows (before the split date) of ``part`` in one row group, batch by batch.

        One boolean filter per record batch (none when every row is kept); the frame's
        columns are not consolidated into blocks (``split_blocks``: no copy of the batch).
        With ``check`` (its name in messages) every batch is :func:`checked`, all its rows.
        """
        for rb in self._read(unit, columns):
            if check and pa.types.is_dictionary(rb.schema.field("station").type):
                at = rb.schema.get_field_index("station")  # (validate_keys makes it str)
                rb = rb.set_column(at, "station", rb.column(at).cast(pa.string()))
            raw = rb.to_pandas(split_blocks=True)
            del rb
            if not len(raw):
                continue
            frame = checked(raw, check) if check else canonical(raw)
            fc = frame[[FC_PREFIX + v for v in self.targets]].notna().all(axis=1).to_numpy()
            obs = frame[[OBS_PREFIX + v for v in self.targets]].notna().any(axis=1).to_numpy()
            keep = fc & obs
            if self.split is not None:
                keep &= (frame["init_time"] < self.split).to_numpy()
                keep &= (frame["valid_time"] < self.split).to_numpy()
            if part != "all":
                is_fit, is_val = self.select(frame)
                keep &= is_fit if part == "fit" else is_val
            yield frame if keep.all() else frame[keep].reset_index(drop=True)


def recorded_periods(files: Sequence[Path], schemas: Sequence[pa.Schema]) -> periods.Periods:
    """The statistic periods the files record (:mod:`probcast.periods`), from their schemas.

    Raises:
        ValueError: Two files record different periods (names both).
    """
    out: periods.Periods = {}
    first: dict[str, Path] = {}
    for f, schema in zip(files, schemas, strict=True):
        for var, hours in periods.of_schema(schema, str(f)).items():
            if periods.differ(out, {var: hours}):
                raise ValueError(
                    f"{f}: {var} is over {hours:g} h, but {first[var]} holds {out[var]:g}-h "
                    f"{var}; one table holds one period"
                )
            out.setdefault(var, hours)
            first.setdefault(var, f)
    return out


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """UTC ``init_time``/``valid_time`` and float ``lead_time`` (``valid_time`` added if absent).

    Text times and durations (``"6h"``) are read as :mod:`probcast.validate` reads them.
    """
    for col in ("init_time", "valid_time"):
        if col in frame.columns:
            times = frame[col]
            dated = pd.api.types.is_datetime64_any_dtype(times)
            frame[col] = pd.to_datetime(times, utc=True) if dated else to_utc(times, col, "")
    lead = frame["lead_time"]
    numeric = pd.api.types.is_numeric_dtype(lead) and not pd.api.types.is_bool_dtype(lead)
    frame["lead_time"] = lead.astype("float64") if numeric else to_hours(lead, "")
    if "valid_time" not in frame.columns:
        frame["valid_time"] = frame["init_time"] + pd.to_timedelta(frame["lead_time"], unit="h")
    return frame


def checked(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame`` checked as in memory: keys and times, ranges of ``fc_<var>``/``obs_<var>``.

    :func:`probcast.validate.validate_keys`, then the physical ranges (float noise passes).

    Raises:
        ValidationError: Naming ``where``, the column and what was expected.
    """
    out = validate_keys(frame, source=where)
    for col in out.columns:
        var = ranged_variable(str(col))
        if var is None:
            continue
        values, info = out[col].to_numpy(dtype="float64"), VARIABLES[var]
        low, high = np.fmin.reduce(values) < info.valid_min, np.fmax.reduce(values) > info.valid_max
        bad = clip_float_noise(values, var)[2] if low or high else None  # (min/max: fast)
        if bad is None or not bad.any():
            continue
        if np.isinf(values).any():
            raise ValidationError(
                f"{where}: column {col!r} has {int(np.isinf(values).sum())} infinite value(s); "
                f"expected finite {info.units} or NaN"
            )
        finite = values[np.isfinite(values)]
        why = range_error(float(finite.min()), float(finite.max()), var, n_bad=int(bad.sum()))
        raise ValidationError(f"{where}: column {col!r}: {why}")
    return out


def _utc(text: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _validation_cut(inits: list[pd.Timestamp], fraction: float, path: Path) -> pd.Timestamp:
    """The cut of :func:`probcast.split.validation_split` from the sorted init times."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    if len(inits) < 2:
        raise ValueError(f"{path}: need at least two initialisation times for validation")
    return inits[min(len(inits) - 1, max(1, round(len(inits) * (1 - fraction))))]


def _before(ns: np.ma.MaskedArray, stop: pd.Timestamp) -> np.ndarray:
    """``time < stop`` (False where the time is missing)."""
    return np.ma.filled(ns < stop.value, False)


def _after(ns: np.ma.MaskedArray, start: pd.Timestamp | None) -> np.ndarray:
    """``time >= start`` (False where the time is missing, everywhere without ``start``)."""
    if start is None:
        return np.zeros(len(ns), dtype=bool)
    return np.ma.filled(ns >= start.value, False)


def _present(column: pa.Array) -> np.ndarray:
    """``notna`` of a column: neither null nor NaN."""
    na = pc.is_null(column, nan_is_null=True)
    return ~np.asarray(na.to_numpy(zero_copy_only=False), dtype=bool)


def sample_mask(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Bernoulli(``fraction``) row mask (all rows when ``fraction >= 1``)."""
    if fraction >= 1.0:
        return np.ones(n, dtype=bool)
    return rng.random(n) < fraction
