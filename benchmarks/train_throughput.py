"""Throughput of the full training loop vs a bare jitted train step of the same model.

Usage::

    .venv/bin/python benchmarks/train_throughput.py [--rows 200000] [--epochs 5]
        [--batch-size 512] [--hidden 128] [--generative]

The full loop is :func:`probcast.train.loop.train` on a synthetic station table written to a
temporary Parquet file: reading, feature fitting, device transfer, compilation, shuffling,
validation and orbax checkpoints included. It runs twice, with a checkpoint save after every
epoch (``train.checkpoint_every_s=0``, the former behaviour) and with the default interval
(``--checkpoint-every``, 30 s). The bare step repeats the compiled train step on one
device-resident batch. Prints a table (samples/s, wall time): "epoch scan" is the loop's own
figure for the jitted epoch, "whole epoch" the time between two epoch log lines (scan,
validation and checkpoints), both medians over epochs 2+; and the peak resident memory
(``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import logging
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


class EpochTimes(logging.Handler):
    """Wall-clock time of every epoch line the training loop logs."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if " epoch " in record.getMessage():
            self.times.append(time.perf_counter())


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
    config.train.refit = False
    config.train.blend_emos = config.train.calibrate_spread = False
    return config


def _table(rows: int):
    n_inits = max(4, rows // (50 * 8))
    return station_table(n_stations=50, n_inits=n_inits, leads=tuple(6.0 * k for k in range(1, 9)))


def full_loop(args: argparse.Namespace, tmp: Path, every: float) -> dict[str, float]:
    table = _table(args.rows)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "table.parquet"
    table.to_parquet(path)
    config = _config(args, path)
    config.train.checkpoint_every_s = every
    times = EpochTimes()
    logger = logging.getLogger("probcast.train.loop")
    logger.addHandler(times)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    (result,) = loop.train(config, tmp / f"run_{every}")
    wall = time.perf_counter() - start
    logger.removeHandler(times)
    history = json.loads((tmp / f"run_{every}" / "seed_0" / "history.json").read_text())
    fit_rows = len(table) * (1 - config.data.val_fraction)
    steady = float(np.median([h["samples_per_s"] for h in history[1:]] or [np.nan]))
    whole = float(np.median(fit_rows / np.diff(times.times)[1:])) if len(times.times) > 2 else 0
    return {
        "rows": float(len(table)),
        "wall_s": wall,
        "end_to_end": result.epochs_run * fit_rows / wall,
        "epoch_steady": steady,
        "epoch_whole": whole,
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
    parser.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="probcast-bench-") as tmp:
        for every in (0.0, args.checkpoint_every, 0.0, args.checkpoint_every):
            r = full_loop(args, Path(tmp) / f"pass{len(runs)}", every)
            runs.setdefault(every, []).append(r)
    bare = bare_step(args)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = jax.devices()[0]
    rows = int(runs[0.0][0]["rows"])
    print(
        f"device: {device.platform} ({device.device_kind}) x{jax.device_count()}; "
        f"rows {rows}, epochs {args.epochs}, batch {args.batch_size}, "
        f"hidden {args.hidden}, generative {args.generative}"
    )
    print(f"{'measure':<52} {'samples/s':>10} {'/ bare':>7}")
    print(f"{'bare jitted train step (one resident batch)':<52} {bare:>10.3g} {1.0:>7.2f}")
    for every, label in ((0.0, "checkpoint every epoch"), (args.checkpoint_every, "")):
        label = label or f"checkpoint every {every:g} s"
        for key, what in (("epoch_steady", "epoch scan"), ("epoch_whole", "whole epoch")):
            v = float(np.median([r[key] for r in runs[every]]))
            print(f"{label + ', ' + what:<52} {v:>10.3g} {v / bare:>7.2f}")
        v = float(np.median([r["end_to_end"] for r in runs[every]]))
        print(f"{label + ', end to end (compile, I/O)':<52} {v:>10.3g} {v / bare:>7.2f}")
    print(f"peak RSS {peak_mib:.0f} MiB (medians of 2 alternating runs per setting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
