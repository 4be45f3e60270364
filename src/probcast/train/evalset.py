"""The validation rows on the devices and their evaluation (early stopping's yardstick).

The validation table is small (the last part of the training period) and stays resident in
chunks of ``train.eval_batch_size`` rows, each sharded over the ``data`` mesh axis; the
last chunk is padded with masked rows. Shared by in-memory and out-of-core training.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from probcast.features import FeatureSpec
from probcast.train import data as tdata
from probcast.train.objective import StepFns, normalised_loss


def round_up(n: int, k: int) -> int:
    """``n`` rounded up to a multiple of ``k``."""
    return -(-n // k) * k


def validation_chunks(
    config: ml_collections.ConfigDict, spec: FeatureSpec, val_table: Any, mesh: jax.sharding.Mesh
) -> list[tdata.DeviceData]:
    """The validation rows as device chunks (empty list without validation rows)."""
    if not len(val_table):
        return []
    rep = tdata.replicated(mesh)
    eb = round_up(min(int(config.train.eval_batch_size), len(val_table)), mesh.size)
    batch = spec.transform(val_table)
    chunks = max(1, -(-len(val_table) // eb))
    whole = tdata.to_device(batch, None, pad_to=chunks * eb)
    shard = tdata.batch_sharded(mesh)
    out = []
    for c in range(chunks):
        part = jax.tree.map(lambda a, c=c: a[c * eb : (c + 1) * eb], whole)
        part = dataclasses.replace(part, scale=whole.scale)
        out.append(jax.device_put(part, _shardings(shard, rep)))
    return out


def _shardings(shard: Any, rep: Any) -> tdata.DeviceData:
    """Per-field shardings of a validation chunk (a ``DeviceData`` of shardings)."""
    return tdata.DeviceData(x=shard, station=shard, center=shard, scale=rep, y=shard, mask=shard)


def evaluate(
    fns: StepFns, params: nnx.State, chunks: list[tdata.DeviceData], key: jax.Array
) -> tuple[float, dict[str, float]]:
    """Validation loss and mean CRPS per target (physical units) over all chunks.

    A target without an observed validation row has no CRPS (left out of the dict, so
    the epoch's log line does not show it as a perfect 0).
    """
    if not chunks:
        return math.nan, {}
    sums = jnp.zeros(len(fns.heads))
    counts = jnp.zeros(len(fns.heads))
    for c, chunk in enumerate(chunks):
        s, n = fns.evaluate(params, chunk, jax.random.fold_in(key, c))
        sums, counts = sums + s, counts + n
    loss = float(normalised_loss(sums, counts, chunks[0].scale))
    mean = np.asarray(sums / jnp.maximum(counts, 1.0))
    seen = np.asarray(counts) > 0
    rows = zip(fns.heads, mean, seen, strict=True)
    return loss, {var: float(v) for var, v, ok in rows if ok}
