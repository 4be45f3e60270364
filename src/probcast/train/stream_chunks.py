"""One epoch over rows streamed from disk: shuffled chunks, prefetched while the device trains.

:class:`FitStream` replaces the device-resident fit table of :mod:`probcast.train.loop` for
tables larger than memory. Each epoch reads the row groups of a
:class:`~probcast.train.stream_source.ParquetSource` in an order shuffled per seed and epoch,
transforms every record batch with the feature spec (from Arrow directly where the schema
allows, :mod:`~probcast.train.stream_transform`) into a host shuffle buffer
(:mod:`~probcast.train.stream_buffer`, drawn by index) and draws chunks of
``train.stream_chunk_rows`` rows (a whole number of batches) at random from it; the buffer
fills up over the first chunks, so the device starts after one chunk's rows are read. A
background thread builds the next chunk and puts it on the device while the device runs the
jit-compiled epoch of in-memory training
(:meth:`probcast.train.objective.StepFns.epoch_padded`) over the current one. Only the last
chunk of an epoch is short: it is padded to whole batches with masked rows (they add nothing
to the loss, no row is counted twice), so an epoch has ``ceil(rows / batch_size)`` steps, as
in memory, and then to a full chunk's size (steps never run), so that it runs on the same
compiled function as the others.

The host never holds more than ``stream_shuffle_rows + stream_read_rows +
3 * stream_chunk_rows`` transformed rows (the shuffle buffer, the chunk being drawn, one
queued and one the device is training on; :attr:`FitStream.peak_rows` records the most),
plus one Parquet record batch being read.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from probcast.features import Batch, FeatureSpec
from probcast.train import data as tdata
from probcast.train.stream_buffer import ShuffleBuffer
from probcast.train.stream_source import ParquetSource
from probcast.train.stream_transform import ArrowTransform, arrow_ready

log = logging.getLogger(__name__)

_END = object()


class FitStream:
    """The fit rows of one run, streamed chunk by chunk (see the module docstring).

    Args:
        source: The opened Parquet table.
        spec: Fitted feature spec.
        part: Row selection (``"fit"``, or ``"all"`` for the refit).
        n: Number of rows of ``part`` (from the scan).
        train: ``config.train`` (``stream_chunk_rows``, ``stream_shuffle_rows``).
    """

    def __init__(
        self, source: ParquetSource, spec: FeatureSpec, part: str, n: int, train: Any
    ) -> None:
        self.source, self.spec, self.part, self.n = source, spec, part, int(n)
        self.chunk_rows = int(train.stream_chunk_rows)
        self.shuffle_rows = int(train.stream_shuffle_rows)
        self.prefetch = 1
        self.batch_size = 0
        self.steps = 0  # of an epoch, set by bind
        self.mesh: jax.sharding.Mesh | None = None
        self.live_rows = 0
        self.peak_rows = 0
        self._lock = threading.Lock()
        # Arrow straight to model inputs where the schema allows (stream_transform)
        self.arrow = arrow_ready(spec, source.schema)
        log.info("streamed rows transformed from %s", "Arrow" if self.arrow else "pandas")

    def bind(self, mesh: jax.sharding.Mesh, batch_size: int) -> int:
        """Fix the device mesh and batch size; return the steps of an epoch."""
        self.mesh, self.batch_size = mesh, int(batch_size)
        self.chunk_rows = max(1, self.chunk_rows // self.batch_size) * self.batch_size
        self.steps = max(1, -(-self.n // self.batch_size))
        return self.steps

    def _count(self, rows: int) -> None:
        with self._lock:
            self.live_rows += rows
            self.peak_rows = max(self.peak_rows, self.live_rows)

    def columns(self) -> list[str]:
        """The columns the feature transform reads (the source adds keys and targets)."""
        names = set(self.source.schema.names)
        return [c for c in self.spec.columns if c in names]

    def _pieces(self, unit: int) -> Iterator[Batch]:
        """The transformed rows of row group ``unit``, record batch by record batch."""
        columns = self.columns()
        if self.arrow:
            transform = ArrowTransform(self.spec)
            for rb in self.source.record_batches(unit, self.part, columns):
                yield transform(rb)
        else:
            for frame in self.source.batches(unit, self.part, columns):
                yield self.spec.transform(frame)

    def chunks(self, rng: np.random.Generator) -> Iterator[Batch]:
        """Host chunks of one epoch, ``chunk_rows`` each (the last may be short)."""
        buffer = ShuffleBuffer(self.chunk_rows + self.shuffle_rows + self.source.read_rows)
        drawn = 0
        for unit in rng.permutation(self.source.units_of(self.part)):
            for piece in self._pieces(int(unit)):
                self._count(len(piece))
                buffer.add(piece)
                del piece
                # the buffer fills up over the first chunks: the device starts after one
                # chunk's rows are read, not after chunk + shuffle rows
                while buffer.n >= self.chunk_rows + min(self.shuffle_rows, drawn):
                    drawn += self.chunk_rows
                    yield buffer.draw(rng, self.chunk_rows)
        while buffer.n > 0:
            yield buffer.draw(rng, self.chunk_rows)

    def _device(self, chunk: Batch, rng: np.random.Generator) -> tuple[Any, Any, int, int]:
        """Put a chunk on the device: its rows, shuffled batches, real rows, steps.

        Padded with masked rows to whole batches (the last batch's), then to the size of a
        full chunk (steps never run), so that every chunk of every epoch runs on one
        compiled epoch function, the short last one included.
        """
        assert self.mesh is not None, "FitStream.bind was not called"
        b, r = self.batch_size, len(chunk)
        padded = -(-r // b) * b
        size = max(padded, min(self.chunk_rows, -(-self.n // b) * b))
        data = tdata.to_device(chunk, tdata.replicated(self.mesh), pad_to=size)
        idx = np.concatenate([rng.permutation(r), np.arange(r, size)]).astype("int32")
        shard = tdata.batch_sharded(self.mesh, ndim=2, axis=1)
        return data, jax.device_put(idx.reshape(size // b, b), shard), r, padded // b

    def epoch(
        self, fns: Any, params: Any, opt_state: Any, key: jax.Array
    ) -> tuple[Any, Any, jax.Array, jax.Array]:
        """One epoch over the streamed rows: ``(params, opt_state, mean loss, mean CRPS)``.

        Every chunk runs through ``fns.epoch_padded`` with the epoch's whole step count as
        the learning-rate schedule's epoch length (as an in-memory epoch has).
        """
        seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, 0))).ravel()
        rng = np.random.default_rng([int(v) for v in seed])
        chunk_key = jax.random.fold_in(key, 1)
        items: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.05)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            try:
                for chunk in self.chunks(rng):
                    put(self._device(chunk, rng))
                    if stop.is_set():
                        return
                put(_END)
            except BaseException as err:  # re-raised in the training thread
                put(err)

        worker = threading.Thread(target=produce, name="probcast-stream", daemon=True)
        worker.start()
        loss_sum: Any = 0.0
        per_sum: Any = 0.0
        steps = rows = c = 0
        previous = None
        try:
            while (item := items.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                data, idx, r, k = item
                params, opt_state, loss, per = fns.epoch_padded(
                    params, opt_state, data, idx, jax.random.fold_in(chunk_key, c), k, self.steps
                )
                del data, idx, item
                loss_sum, per_sum = loss_sum + loss * k, per_sum + per * k
                steps, rows, c = steps + k, rows + r, c + 1
                if previous is not None:  # at most two chunks queued on the device
                    previous.block_until_ready()
                previous = loss
                self._count(-r)
        finally:
            stop.set()
            worker.join()
            self.live_rows = 0
        if rows != self.n:
            log.warning("streamed %d rows in an epoch, expected %d", rows, self.n)
        if not steps:
            raise ValueError(f"{self.source.path}: no {self.part} rows to train on")
        return params, opt_state, loss_sum / steps, per_sum / steps
