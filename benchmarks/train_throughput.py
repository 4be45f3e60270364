"""Throughput of the full training loop vs a bare jitted train step of the same model.

Usage::

    .venv/bin/python benchmarks/train_throughput.py [--rows 200000] [--epochs 5]
        [--batch-size 512] [--hidden 128] [--generative]

The full loop is :func:`probcast.train.loop.train` on a synthetic station table written to a
temporary Parquet file: reading, feature fitting, device transfer, compilation, shuffling,
validation and orbax checkpoints included. The bare step repeats the compiled train step on
one device-resident batch. Prints a table (samples/s, wall time) and the peak resident
memory (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from probcast.configs import default
from probcast.features import FeatureSpec
from probcast.model.network import build_model, head_families
from probcast.testing.stations import station_table
from probcast.train import data as tdata
from probcast.train import loop
from probcast.train.objective import StepFns, make_optimizer


def _config(args: argparse.Namespace, path: Path):
    config = default.get_config()
    config.data.path = str(path)
    config.data.val_fraction = 0.1
    config.model.hidden = args.hidden
    config.model.generative = "tp" if args.generative else ""
    config.train.batch_size = args.batch_size
    config.train.epochs = args.epochs
    config.train.patience = args.epochs
    config.train.warmup_epochs = 0
    config.tracking.backend = "none"
    return config


def _table(rows: int):
    n_inits = max(4, rows // (50 * 8))
    return station_table(n_stations=50, n_inits=n_inits, leads=tuple(6.0 * k for k in range(1, 9)))


def full_loop(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    table = _table(args.rows)
    path = tmp / "table.parquet"
    table.to_parquet(path)
    config = _config(args, path)
    start = time.perf_counter()
    (result,) = loop.train(config, tmp / "run")
    wall = time.perf_counter() - start
    history = json.loads((tmp / "run" / "seed_0" / "history.json").read_text())
    fit_rows = len(table) * (1 - config.data.val_fraction)
    steady = float(np.median([h["samples_per_s"] for h in history[1:]] or [np.nan]))
    return {
        "rows": float(len(table)),
        "wall_s": wall,
        "end_to_end": result.epochs_run * fit_rows / wall,
        "epoch_steady": steady,
    }


def bare_step(args: argparse.Namespace, steps: int = 200) -> float:
    table = _table(min(args.rows, 50_000))
    config = _config(args, Path("unused"))
    spec = FeatureSpec.fit(table, None)
    heads = head_families(spec.targets, config.model)
    model = build_model(spec.n_features, spec.n_stations, heads, config.model, seed=0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, _ = make_optimizer(config.train, 100)
    fns = StepFns(graphdef, rest, heads, tx, int(config.train.ensemble_members))
    data = tdata.to_device(spec.transform(table))
    batch = tdata.take(data, jnp.arange(args.batch_size) % data.n)
    opt_state = tx.init(params)
    key = jax.random.key(0)
    params, opt_state, loss, _ = fns.step(params, opt_state, batch, key)  # compile
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for i in range(steps):
        params, opt_state, loss, _ = fns.step(params, opt_state, batch, jax.random.fold_in(key, i))
    jax.block_until_ready(loss)
    return steps * args.batch_size / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--generative", action="store_true", help="generative tp head")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="probcast-bench-") as tmp:
        full = full_loop(args, Path(tmp))
    bare = bare_step(args)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = jax.devices()[0]
    print(
        f"device: {device.platform} ({device.device_kind}) x{jax.device_count()}; "
        f"rows {int(full['rows'])}, epochs {args.epochs}, batch {args.batch_size}, "
        f"hidden {args.hidden}, generative {args.generative}"
    )
    print(f"{'measure':<44} {'samples/s':>12}")
    print(f"{'bare jitted train step (one resident batch)':<44} {bare:>12.3g}")
    print(f"{'full loop, epoch scan (median, epochs 2+)':<44} {full['epoch_steady']:>12.3g}")
    print(f"{'full loop, end to end (incl. compile, I/O)':<44} {full['end_to_end']:>12.3g}")
    print(f"full loop wall time {full['wall_s']:.1f} s; peak RSS {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
