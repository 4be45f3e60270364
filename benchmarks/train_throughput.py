"""Throughput of the whole training command vs a bare jitted train step, interleaved.

Usage::

    .venv/bin/python benchmarks/train_throughput.py [--rows 200000] [--epochs 5]
        [--repeats 2] [--batch-size 512] [--hidden 128] [--generative] [--folds 5,0]
        [--compile-cache DIR]

One process runs, ``--repeats`` times, a burst of the bare step then :func:`probcast.train.
loop.train` once per ``--folds`` setting, and a last burst after them: every training run
sits between two bare-step bursts of the same process, and its ratios are taken against the
mean of those two (a loaded machine slows both alike). The table gives the medians over
repeats of the ratios, with the samples/s they come from.

The bare step repeats the compiled train step on one device-resident batch. ``train`` runs
with the default configuration (``train.cv_folds=5``: two networks per time-blocked fold, the
EMOS blend and the spread factor chosen on the out-of-fold predictions; ``--folds 0``: one
validation block, then the refit on all rows), only the epochs, patience, warmup, width and
batch size set from the arguments, on a synthetic station table written to Parquet:

* end to end: samples / wall time of the whole ``train`` call (reading, feature fitting,
  every fold's training and compiles, validation, checkpoints, EMOS, calibration, refit);
  samples are fit rows x epochs actually trained, summed over every network trained
  (the folds' networks; with ``--folds 0`` the selection network and its refit);
* whole epoch: a network's fit rows / time between two of its epoch log lines (scan,
  validation, checkpoints), median over every epoch but each network's first;
* epoch scan: the loop's own figure for the jitted epoch (``samples_per_s`` in
  ``history.json``: steps x batch / scan time), median over the same epochs;
* compiles: XLA compilations during the ``train`` call (``jax.monitoring``); hits:
  executables loaded from the persistent cache instead (``--compile-cache``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import monitoring

from probcast import compile_cache
from probcast.configs import default
from probcast.features import FeatureSpec
from probcast.model.network import head_families
from probcast.testing.stations import station_table
from probcast.train import data as tdata
from probcast.train import loop
from probcast.train.objective import StepFns, make_optimizer

COMPILES = [0]
HITS = [0]

PHASE_ROWS = (  # log line -> (phase tag, fit rows) of the networks trained next
    (re.compile(r"^fold (\d+)/\d+: fit rows (\d+)"), lambda m: (f"fold{m[1]}/", int(m[2]))),
    (re.compile(r"^fit rows (\d+), validation rows"), lambda m: ("", int(m[1]))),
    (re.compile(r"^refit on all (\d+) training rows"), lambda m: ("refit/", int(m[1]))),
)
EPOCH = re.compile(r"^(\S*?)seed (\d+) epoch ")


def count_compiles(event: str, duration: float, **kwargs: Any) -> None:
    if "backend_compile" in event:  # compiled, or loaded from the persistent cache
        COMPILES[0] += 1


def _count_hits(event: str, **kwargs: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        HITS[0] += 1


class TrainLog(logging.Handler):
    """Fit rows of each training phase and the wall-clock time of every epoch line."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, int] = {}
        self.epochs: dict[tuple[str, int], list[float]] = collections.defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for pattern, read in PHASE_ROWS:
            if m := pattern.match(message):
                tag, rows = read(m)
                self.rows[tag] = rows
        if m := EPOCH.match(message):
            self.epochs[(m[1], int(m[2]))].append(time.perf_counter())

    def samples(self) -> float:
        """Fit rows x epochs trained, over every network."""
        return float(sum(self.rows[tag] * len(t) for (tag, _), t in self.epochs.items()))

    def whole_epoch(self) -> float:
        """Median fit rows / time between two epoch lines of one network (first left out)."""
        rates = [self.rows[tag] / d for (tag, _), t in self.epochs.items() for d in np.diff(t)[1:]]
        return float(np.median(rates)) if rates else float("nan")


def _config(args: argparse.Namespace, path: Path, folds: int) -> Any:
    config = default.get_config()
    config.data.path = str(path)
    config.model.hidden = args.hidden
    config.model.generative = "tp" if args.generative else ""
    config.train.batch_size = args.batch_size
    config.train.epochs = args.epochs
    config.train.patience = args.epochs
    config.train.warmup_epochs = 0
    config.train.cv_folds = folds
    config.tracking.backend = "none"
    return config


def _table(rows: int) -> Any:
    n_inits = max(4, rows // (50 * 8))
    return station_table(n_stations=50, n_inits=n_inits, leads=tuple(6.0 * k for k in range(1, 9)))


def train_run(args: argparse.Namespace, path: Path, workdir: Path, folds: int) -> dict[str, float]:
    """One ``train`` call: end-to-end, whole-epoch and epoch-scan samples/s, compiles."""
    log = TrainLog()
    logger = logging.getLogger("probcast.train.loop")
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # counted, not printed
    compiles, hits = COMPILES[0], HITS[0]
    start = time.perf_counter()
    try:
        loop.train(_config(args, path, folds), workdir)
    finally:
        logger.removeHandler(log)
        logger.propagate = True
    wall = time.perf_counter() - start
    scan = []
    for history in workdir.rglob("history.json"):
        scan += [h["samples_per_s"] for h in json.loads(history.read_text())[1:]]
    return {
        "wall_s": wall,
        "samples": log.samples(),
        "networks": float(len(log.epochs)),
        "end_to_end": log.samples() / wall,
        "epoch_whole": log.whole_epoch(),
        "epoch_scan": float(np.median(scan)) if scan else float("nan"),
        "compiles": float(COMPILES[0] - compiles - (HITS[0] - hits)),
        "cache_hits": float(HITS[0] - hits),
    }


class BareStep:
    """The compiled train step of ``config``'s model (the loop's own) on one resident batch."""

    def __init__(self, config: Any, table: Any) -> None:
        spec = FeatureSpec.fit(table, None, config.features)
        heads = head_families(spec.targets, config.model)
        model = loop._model(config, spec, heads, seed=0)  # as train.loop builds it
        graphdef, self.params, rest = nnx.split(model, nnx.Param, ...)
        tx, _ = make_optimizer(config.train, 100)
        self.fns = StepFns(graphdef, rest, heads, tx, int(config.train.ensemble_members))
        data = tdata.to_device(spec.transform(table))
        self.batch_size = int(config.train.batch_size)
        self.batch = tdata.take(data, jnp.arange(self.batch_size) % data.n)
        self.opt_state = tx.init(self.params)
        self.burst(5)  # compile

    def burst(self, steps: int = 600) -> float:
        """Samples/s of ``steps`` steps (their keys drawn before the clock starts)."""
        keys = list(jax.random.split(jax.random.key(0), steps))
        jax.block_until_ready(keys)
        start = time.perf_counter()
        p, o = self.params, self.opt_state
        for key in keys:
            p, o, loss, _ = self.fns.step(p, o, self.batch, key)
        jax.block_until_ready(loss)
        self.params, self.opt_state = p, o
        return steps * self.batch_size / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--generative", action="store_true", help="generative tp head")
    parser.add_argument("--folds", default="5,0", help="train.cv_folds settings, comma-separated")
    parser.add_argument(
        "--compile-cache",
        type=Path,
        help="JAX persistent compilation cache folder (probcast.compile_cache); run twice "
        "with the same folder to measure a retraining whose kernels are already compiled",
    )
    args = parser.parse_args()
    if args.compile_cache:
        compile_cache.enable(args.compile_cache)
    folds = [int(f) for f in args.folds.split(",")]
    monitoring.register_event_duration_secs_listener(count_compiles)
    monitoring.register_event_listener(_count_hits)
    load = os.getloadavg()[0]
    bare = BareStep(_config(args, Path("unused"), 0), _table(min(args.rows, 50_000)))
    runs: dict[int, list[dict[str, float]]] = {f: [] for f in folds}
    with tempfile.TemporaryDirectory(prefix="probcast-bench-") as tmp:
        path = Path(tmp) / "table.parquet"
        table = _table(args.rows)
        table.to_parquet(path)
        before = bare.burst()
        for r in range(args.repeats):
            for f in folds:
                run = train_run(args, path, Path(tmp) / f"run{r}_cv{f}", f)
                after = bare.burst()
                run["bare"] = (before + after) / 2
                runs[f].append(run)
                before = after
    device = jax.devices()[0]
    print(
        f"device: {device.platform} ({device.device_kind}) x{jax.device_count()}; "
        f"rows {len(table)}, epochs {args.epochs}, batch {args.batch_size}, hidden "
        f"{args.hidden}, generative {args.generative}; load average {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}; medians of {args.repeats} interleaved runs"
    )
    print(
        f"{'setting':<14} {'bare/s':>8} {'e2e/s':>8} {'e2e/bare':>8} {'whole/bare':>10} "
        f"{'scan/bare':>9} {'wall s':>7} {'samples':>9} {'nets':>4} {'compiles':>8} {'hits':>5}"
    )
    for f, rs in runs.items():

        def med(key: str, rs: list[dict[str, float]] = rs) -> float:
            return float(np.median([r[key] for r in rs]))

        def ratio(key: str, rs: list[dict[str, float]] = rs) -> float:
            return float(np.median([r[key] / r["bare"] for r in rs]))

        name = f"cv_folds={f}"
        print(
            f"{name:<14} {med('bare'):>8.3g} {med('end_to_end'):>8.3g} "
            f"{ratio('end_to_end'):>8.2f} {ratio('epoch_whole'):>10.2f} "
            f"{ratio('epoch_scan'):>9.2f} {med('wall_s'):>7.1f} {med('samples'):>9.3g} "
            f"{med('networks'):>4.0f} {med('compiles'):>8.0f} {med('cache_hits'):>5.0f}"
        )
    print(
        "samples = fit rows x epochs trained over every network; ratios are per run against "
        "the mean of the bare-step bursts before and after it"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
