"""Training data: read the table named in the config and keep it resident on the devices.

The whole (fit or validation) table is put on the accelerators once; each step gathers its
batch there from a seeded permutation, so there is no host-side input pipeline. With several
devices the data is replicated and every batch is sharded along a ``data`` mesh axis (data
parallelism); on one device the same code runs and the sharding is a no-op. In a
multi-process run (:mod:`probcast.train.distributed`) the mesh spans the devices of every
process; each process holds the whole table and :func:`put` builds the global arrays from
it without moving data between processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from probcast import periods
from probcast.features import Batch

log = logging.getLogger(__name__)

DATA_AXIS = "data"


def load_table(
    path: str, split_date: str = "", neighbourhood: str = ""
) -> tuple[pd.DataFrame, str]:
    """Return the training table named by ``config.data.path`` and a description of it.

    Args:
        path: A CSV/Parquet station table, a gridded file (NetCDF, Zarr, GRIB, kerchunk
            JSON) or a registry dataset name (its prepared training part is used).
        split_date: Optional ISO date; only rows initialised (and valid) before it are kept.
        neighbourhood: ``config.features.neighbourhood`` (``"3,7"``): window edges of the
            neighbourhood predictors of gridded data (:func:`probcast.align.points.grid_to_table`).

    Returns:
        ``(table, source)``.
    """
    if not path:
        raise ValueError("config.data.path is empty: name a station table or a dataset id")
    from probcast.align.points import grid_to_table, is_grid_path, open_grid

    p = Path(path)
    if is_grid_path(p):
        table, source = grid_to_table(open_grid(p), neighbourhood=neighbourhood), str(p)
    elif p.suffix.lower() in (".csv", ".parquet", ".pq") or p.exists():
        from probcast.ingest.tables import read_table

        table, source = read_table(p), str(p)
    else:
        from probcast.data.prepare import prepare

        prepared = prepare(path)
        table = prepared.train  # type: ignore[assignment]
        if prepared.kind == "grid":
            table = grid_to_table(prepared.train, neighbourhood=neighbourhood)  # type: ignore[arg-type]
        source = f"dataset:{path}/train"
    if split_date:
        from probcast.split import time_split

        table, _ = time_split(table, pd.Timestamp(split_date))
    log.info("training table %s: %d rows", source, len(table))
    return table, source


class TrainingRows(NamedTuple):
    """The usable training rows of ``config.data.path`` (:func:`read_training`).

    Attributes:
        table: Every fit and validation row (:func:`probcast.features.usable_rows`).
        source: The data file or dataset, for messages and the artefact.
        digest: :func:`fingerprint` of the table as read (before dropping rows).
        targets: The target variables.
        findings: Warnings about the rows (:mod:`probcast.train.plausible`).
    """

    table: pd.DataFrame
    source: str
    digest: str
    targets: list[str]
    findings: list[str]


def read_training(config: Any) -> TrainingRows:
    """Read, check and keep the usable rows of the training table of ``config``.

    Raises:
        ValueError: An unreadable table, too few rows before ``data.split_date``, periods
            in conflict, no targets, or a constant target (each naming the data file).
    """
    from probcast.features import resolve_targets, usable_rows
    from probcast.train.arguments import enough_before_split
    from probcast.train.check import reading_data
    from probcast.train.plausible import check_training_rows

    with reading_data(config.data.path):  # errors that name no file: named the data file
        path, date = str(config.data.path), str(config.data.split_date)
        table, source = load_table(path, date, str(config.features.neighbourhood))
        enough_before_split(table, config, source)
        table = with_periods(table, str(config.data.periods), source)
        digest = fingerprint(table)
        targets = resolve_targets(table, str(config.data.targets))
        table = usable_rows(table, targets)
        findings = check_training_rows(table, targets, source)
    return TrainingRows(table, source, digest, targets, findings)


def with_periods(table: pd.DataFrame, configured: str, source: str) -> pd.DataFrame:
    """``table`` with its statistic periods completed by ``config.data.periods``.

    Raises:
        ValueError: The config and the table disagree (names both).
    """
    found = periods.of(table.attrs, source)
    columns = [str(c) for c in table.columns]
    for var, why in periods.unfixed(table.attrs, source).items():
        if f"fc_{var}" in columns or f"obs_{var}" in columns:
            raise ValueError(f"{source}: {var} is {why}")
    return periods.recorded(table, known_periods(found, configured, source, columns))


def known_periods(
    found: periods.Periods, configured: str, source: str, columns: Sequence[str]
) -> periods.Periods:
    """The data's periods completed by ``config.data.periods`` (:mod:`probcast.periods`).

    An ``obs_tp``/``obs_tmax``/``obs_tmin`` column whose period is known from neither is
    logged: its products cannot state the period, and prediction cannot check its input's.

    Raises:
        ValueError: The config and the data disagree (names both).
    """
    known = periods.combine(found, periods.parse(configured, "data.periods"), source)
    unknown = [v for v in periods.STATISTICS if f"obs_{v}" in columns and v not in known]
    if unknown:
        log.warning(
            "%s: the period of %s is not recorded (data build and data prepare record it); "
            "set data.periods (e.g. %s:6) so that products state it and prediction checks it",
            source,
            ", ".join(unknown),
            unknown[0],
        )
    return known


def fingerprint(table: pd.DataFrame) -> str:
    """sha256 of a table's content (column names, dtypes and values; row order matters)."""
    digest = hashlib.sha256()
    digest.update(repr([(c, str(t)) for c, t in table.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def make_mesh() -> Mesh:
    """A 1-D mesh over every device of every process (``jax.devices()``), axis ``data``."""
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, ndim: int = 1, axis: int = 0) -> NamedSharding:
    """Sharding that splits axis ``axis`` of an ``ndim`` array over the ``data`` mesh axis."""
    spec: list[str | None] = [None] * ndim
    spec[axis] = DATA_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DeviceData:
    """A :class:`Batch` as device arrays (a JAX pytree); missing ``y`` replaced by 0."""

    x: jax.Array
    station: jax.Array
    center: jax.Array
    scale: jax.Array
    y: jax.Array
    mask: jax.Array

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.x.shape[0])


def to_device(batch: Batch, sharding: Any = None, pad_to: int = 0) -> DeviceData:
    """Put a batch on the devices, optionally padded with masked rows to ``pad_to`` rows.

    Missing observations become 0 with ``mask = False`` so that no NaN ever enters a loss
    or its gradient.
    """
    n = len(batch)
    pad = max(0, pad_to - n)

    def padded(a: np.ndarray) -> jax.Array:
        if pad:
            a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), dtype=a.dtype)])
        return put(a, sharding)

    y = np.where(batch.mask, batch.y, 0.0).astype("float32")
    return DeviceData(
        x=padded(batch.x),
        station=padded(batch.station),
        center=padded(batch.center),
        scale=put(batch.scale, sharding),
        y=padded(y),
        mask=padded(batch.mask),
    )


def put(a: np.ndarray, sharding: Any = None) -> jax.Array:
    """Put a host array (the same on every process) on the devices of ``sharding``.

    A sharding that spans other processes' devices (multi-process training) is filled
    from this process's copy: each process places the slices its own devices hold
    (``jax.make_array_from_callback``), with no cross-process transfer or equality check.
    """
    if sharding is not None and not sharding.is_fully_addressable:
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.device_put(jnp.asarray(a), sharding)


def epoch_indices(seed: int | Sequence[int], n: int, batch_size: int) -> np.ndarray:
    """Seeded shuffle of ``range(n)`` as ``(steps, batch_size)``; wraps to fill the last batch.

    Drawn on the host (NumPy's PCG64, seeded by ``seed``, e.g. ``(network seed, epoch)``):
    about 1 ms for 10^5 rows, where ``jax.random.permutation`` (a sort-based shuffle) took
    about 90 ms on a CPU device, a fifth of the epoch it shuffles.
    """
    steps = max(1, -(-n // batch_size))
    perm = np.random.default_rng(seed).permutation(n).astype(np.int32)
    return np.resize(perm, steps * batch_size).reshape(steps, batch_size)


def padded_indices(
    seed: int | Sequence[int], n: int, batch_size: int, max_steps: int, sharding: Any = None
) -> jax.Array:
    """:func:`epoch_indices` of ``n`` rows padded with zero rows to ``max_steps`` steps.

    The epoch's own steps come first and are exactly those of :func:`epoch_indices`; the
    padding lets epochs of different lengths (cross-validation folds, the refit) share one
    compiled epoch (:meth:`probcast.train.objective.StepFns.epoch_padded`). Every process
    draws the same indices from the same seed (multi-process training).
    """
    idx = epoch_indices(seed, n, batch_size)
    return put(np.pad(idx, ((0, max(0, max_steps - idx.shape[0])), (0, 0))), sharding)


def take(data: DeviceData, idx: jax.Array) -> DeviceData:
    """Gather rows ``idx`` (on device); ``scale`` is per target and kept whole."""
    return DeviceData(
        x=data.x[idx],
        station=data.station[idx],
        center=data.center[idx],
        scale=data.scale,
        y=data.y[idx],
        mask=data.mask[idx],
    )
