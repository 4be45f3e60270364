"""The feature transform of streamed training, straight from Arrow record batches.

:class:`ArrowTransform` returns, for the rows of a Parquet record batch, the
:class:`~probcast.features.Batch` that :meth:`FeatureSpec.transform` returns for the same rows
as a pandas frame, bit for bit (the same float64 arithmetic, cast to float32 at the end), with
no pandas frame in between: columns go from Arrow to NumPy once, times are integer
nanoseconds (hour, minute and day of year by integer arithmetic), stations are looked up once
per dictionary entry. The pandas conversion, the frame indexing and the ``.dt`` accessors
were most of the host time of a streamed epoch.

:func:`arrow_ready` says whether a table's schema allows it (times stored as timestamps, a
``valid_time`` column, numeric predictors, no recent-error predictors); otherwise the stream
uses the pandas path (:meth:`FeatureSpec.transform`).
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from probcast import station_ids
from probcast.features import UNKNOWN_STATION, Batch, FeatureSpec, _warn_unflagged
from probcast.schema import FC_PREFIX, OBS_PREFIX
from probcast.time_features import cyclic_ns

log = logging.getLogger(__name__)

_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def arrow_ready(spec: FeatureSpec, schema: pa.Schema) -> bool:
    """Whether :class:`ArrowTransform` handles tables of ``schema`` for ``spec``."""
    if spec.recent_hours > 0 or "valid_time" not in schema.names:
        return False
    times = ("init_time", "valid_time")
    if not all(pa.types.is_timestamp(schema.field(c).type) for c in times):
        return False
    numeric = [*spec.columns, *(FC_PREFIX + v for v in spec.targets)]
    numeric += [OBS_PREFIX + v for v in spec.targets if OBS_PREFIX + v in schema.names]
    for c in numeric:
        if c not in schema.names:
            return False
        t = schema.field(c).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            return False
    return True


def nanoseconds(column: pa.Array) -> np.ma.MaskedArray:
    """A timestamp column as int64 ns since 1970 UTC (naive read as UTC), masked where null."""
    ints = column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    missing = column.is_null().to_numpy(zero_copy_only=False)
    return np.ma.MaskedArray(ints.astype("int64") * _NS[column.type.unit], mask=missing)


def floats(column: pa.Array) -> np.ndarray:
    """A numeric column as float64 (nulls as NaN), as pandas' ``to_numpy("float64")``."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype="float64")


class ArrowTransform:
    """:meth:`FeatureSpec.transform` of Arrow record batches (see the module docstring).

    Args:
        spec: The fitted feature spec.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.mean = np.asarray(spec.mean, dtype="float64")[:, None]
        self.std = np.asarray(spec.std, dtype="float64")[:, None]
        self.flagged = [spec.columns.index(c) for c in spec.indicators]
        self.scale = np.asarray(spec.scale, dtype="float32")
        self.vocab = {s: i + 1 for i, s in enumerate(spec.stations)}

    def __call__(self, rb: pa.RecordBatch) -> Batch:
        """The model inputs of the rows of ``rb``.

        Raises:
            ValueError: As :meth:`FeatureSpec.transform` (a raw forecast of a target missing).
        """
        spec = self.spec
        n, k = rb.num_rows, len(spec.columns)
        center = np.stack([floats(rb.column(FC_PREFIX + v)) for v in spec.targets], axis=1)
        if not np.isfinite(center).all() or rb.column("valid_time").null_count:
            # the pandas path: names the column and rows of a missing forecast; NaT times
            from probcast.train.stream_source import canonical

            return spec.transform(canonical(rb.to_pandas()))
        values = np.empty((k, n), dtype="float64")  # one column per row: contiguous passes
        for j, col in enumerate(spec.columns):
            values[j] = floats(rb.column(col))
        missing = ~np.isfinite(values)
        _warn_unflagged(spec.columns, spec.indicators, missing.T)
        values -= self.mean
        values /= self.std
        values[missing] = 0.0
        x = np.empty((n, spec.n_features), dtype="float32")
        x[:, :k] = values.T
        j = k
        if spec.cyclic:
            ns = nanoseconds(rb.column("valid_time")).filled(0)
            enc = cyclic_ns(ns, spec.doy)
            x[:, j : j + enc.shape[1]] = enc
            j += enc.shape[1]
        if self.flagged:
            x[:, j:] = missing[self.flagged].T
        y = np.full((n, len(spec.targets)), np.nan)
        for t, var in enumerate(spec.targets):
            if OBS_PREFIX + var in rb.schema.names:
                y[:, t] = floats(rb.column(OBS_PREFIX + var))
        return Batch(
            x=x,
            station=self._stations(rb.column("station")),
            center=center.astype("float32"),
            scale=self.scale,
            y=y.astype("float32"),
            mask=np.isfinite(y),
        )

    def _stations(self, column: pa.Array) -> np.ndarray:
        """Embedding index of each row's station (:meth:`FeatureSpec.station_index`)."""
        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        unknown = self.vocab.get("nan", UNKNOWN_STATION)  # a missing station, as in pandas
        names = column.dictionary.to_pylist()
        lookup = np.array(
            [self.vocab.get(station_ids.text_of(s), UNKNOWN_STATION) for s in names] + [unknown],
            dtype="int32",
        )
        codes = column.indices.fill_null(len(names)).to_numpy(zero_copy_only=False)
        idx = lookup[codes]
        unseen = int((idx == UNKNOWN_STATION).sum())
        if unseen:
            log.info("%d rows are at stations unseen in training (unknown embedding)", unseen)
        return idx
