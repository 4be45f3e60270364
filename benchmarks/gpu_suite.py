"""Every GPU check of issue 15 in one prepared run: throughput, CONUS station training, CONUS grid.

Usage (on a GPU machine; ``--scale 0.01`` runs the same code in minutes on a CPU)::

    python benchmarks/gpu_suite.py --out results/ [--scale 1.0] [--budget 480]
        [--train-override train.epochs=12]

Each part runs in its own subprocess with a share of the time budget, so one failure or
timeout leaves the others' figures; every part writes ``<out>/<part>.json`` and its log
``<out>/<part>.log`` as it goes, and the parent prints one Markdown table
(``<out>/gpu_suite.md``). The parts, in the order they run:

1. ``throughput``: for float32, bfloat16 and float16 compute, the bare jitted train step on
   one resident batch against the real loop (:func:`probcast.train.loop.train`: device
   transfer, compile, shuffled epoch scan, validation, orbax checkpoints) on a synthetic
   7-variable station table, same model (2 x 512 trunk, batch 8192). "scan" is the epoch
   scan alone (the loop's own samples/s), "epoch" the whole epoch (time between two
   epoch lines: scan + validation + checkpoints).
2. ``conus_grid``: a 7-variable gridded model (trained here on a small synthetic grid), then
   one NBM-CONUS-size run (2345 x 1597 points, 7 variables) to 51 members, 19 percentiles,
   threshold probabilities and parameters in compressed CF NetCDF through
   :func:`probcast.run`, timed in the process (inference + products + write).
3. ``conus_train``: ``probcast train --config=gpu_bf16`` end to end (reading, features,
   training with early stopping, EMOS blend, spread calibration, refit, completion marker),
   as a user runs it, on a CONUS-size synthetic network: 1,000 stations x 7 variables x
   2 years of daily runs x 40 lead times (29.2 M rows at ``--scale 1``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = ("throughput", "conus_grid", "conus_train")
SHARE = {"throughput": 0.12, "conus_grid": 0.22, "conus_train": 0.66}
GRID_VARS = ("t2m", "td2m", "u10", "v10", "msl", "tcc", "tp")
CONUS = (1597, 2345)
log = logging.getLogger("gpu_suite")


def _device() -> str:
    import jax

    d = jax.devices()[0]
    return f"{d.platform} ({d.device_kind}) x{jax.device_count()}, jax {jax.__version__}"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_throughput(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    import numpy as np
    from jax import monitoring
    from train_throughput import COMPILES, BareStep, TrainLog, count_compiles  # beside this

    from probcast.configs import gpu_bf16
    from probcast.testing.stations import network_table
    from probcast.train import loop

    n_stations = max(20, int(1000 * args.scale))
    table = network_table(n_stations, n_days=max(20, int(60 * min(1.0, args.scale * 4))))
    path = tmp / "throughput.parquet"
    table.to_parquet(path)
    rows: dict[str, object] = {"rows": len(table)}
    monitoring.register_event_duration_secs_listener(count_compiles)  # type: ignore[arg-type]
    epochs = 5
    for dtype in args.dtypes.split(","):
        config = gpu_bf16.get_config()
        config.data.path = str(path)
        config.train.compute_dtype = dtype
        config.train.epochs = config.train.patience = epochs
        config.train.warmup_epochs = 0
        config.train.cv_folds = 0  # one network: the loop's own throughput
        config.model.rows_per_unit = 0  # the bare step's width (no narrowing on small data)
        config.train.refit = config.train.blend_emos = config.train.calibrate_spread = False
        config.tracking.backend = "none"
        times = TrainLog()
        logging.getLogger("probcast.train.loop").addHandler(times)
        start = time.perf_counter()
        loop.train(config, tmp / f"run_{dtype}")
        wall = time.perf_counter() - start
        logging.getLogger("probcast.train.loop").removeHandler(times)
        history = json.loads((tmp / f"run_{dtype}" / "seed_0" / "history.json").read_text())
        scan = float(np.median([h["samples_per_s"] for h in history[1:]]))
        whole = times.whole_epoch()
        # two bursts, compiles counted in each: the first bfloat16 burst of the H200 run
        # was 7x below float32's, perhaps a compile inside it
        step = BareStep(config, table.iloc[: min(len(table), 200_000)])
        bursts, compiles = [], []
        for _ in range(2):
            before = COMPILES[0]
            bursts.append(step.burst(200))
            compiles.append(COMPILES[0] - before)
        bare = bursts[-1]
        rows[dtype] = {
            "bare_step": bare,
            "bare_bursts": bursts,
            "bare_burst_compiles": compiles,
            "loop_scan": scan,
            "loop_epoch": whole,
            "scan_vs_bare": scan / bare,
            "epoch_vs_bare": whole / bare,
            "loop_wall_s": wall,
            "val_crps_t2m": history[-1].get("val_crps_t2m"),
        }
        _save(args, "throughput", rows)
    return rows


def part_conus_train(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    from train_phases import phases  # beside this script

    from probcast.testing.stations import network_table

    n_stations, n_days = (
        max(20, int(1000 * args.scale)),
        max(30, int(730 * min(1.0, args.scale * 10))),
    )
    t0 = time.perf_counter()
    table = network_table(n_stations, n_days)
    path = tmp / "conus_stations.parquet"
    table.to_parquet(path, row_group_size=1_000_000)
    made = time.perf_counter() - t0
    out: dict[str, object] = {
        "rows": len(table),
        "stations": n_stations,
        "days": n_days,
        "table_s": made,
    }
    del table
    cmd = [
        sys.executable,
        "-m",
        "probcast.cli",
        "train",
        "--config=gpu_bf16",
        f"--workdir={tmp / 'conus_run'}",
        f"--config.data.path={path}",
        "--config.tracking.backend=none",
    ]
    cmd += [f"--config.{kv}" for kv in args.train_override]
    log = Path(args.out) / "conus_train.train.log"
    start, wall = time.perf_counter(), time.time()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    out["train_s"] = time.perf_counter() - start
    out["returncode"] = proc.returncode
    out["phase_s"] = dict(phases(log.read_text(), wall))  # seconds per phase, from the log
    summary = tmp / "conus_run" / "summary.json"
    if summary.exists():
        out["summary"] = json.loads(summary.read_text())
    return out


def part_conus_grid(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    import probcast
    from probcast.testing.grids import forecast_grid
    from probcast.train.cli import main as train_main

    train_grid = forecast_grid((48, 64), n_runs=40, variables=GRID_VARS, lead_hours=(24.0,))
    train_path = tmp / "grid_train.nc"
    train_grid.to_netcdf(train_path)
    t0 = time.perf_counter()
    code = train_main(
        [
            "--config=gpu_bf16",
            f"--workdir={tmp / 'grid_model'}",
            f"--config.data.path={train_path}",
            "--config.model.embed_dim=0",
            "--config.features.cyclic=False",
            "--config.train.epochs=20",
            "--config.tracking.backend=none",
        ]
    )
    out: dict[str, object] = {"train_s": time.perf_counter() - t0, "train_rc": code}
    log.info("grid model trained in %.1f s", out["train_s"])
    ny, nx = (max(16, int(n * args.scale**0.5)) for n in CONUS)
    grid = forecast_grid(
        (ny, nx), n_runs=1, variables=GRID_VARS, lead_hours=(24.0,), seed=1, spacing=2540.0
    )
    grid = grid.drop_vars([v for v in grid.data_vars if str(v).startswith("obs_")])
    in_path = tmp / "conus_grid.nc"
    grid.to_netcdf(in_path)
    log.info("CONUS input written: %s points", ny * nx)
    out["points"] = ny * nx
    out["shape"] = [ny, nx]
    thresholds = {"tp": (0.1, 1.0, 5.0, 10.0), "t2m": (273.15,), "tcc": (0.5,)}
    for label, tile in (("first", args.tile), ("second", args.tile)):
        request = probcast.PredictRequest(
            model=tmp / "grid_model",
            input=in_path,
            output=tmp / f"conus_{label}.nc",
            members=51,
            percentiles=tuple(range(5, 100, 5)),
            thresholds=thresholds,
            tile=tile,
            scheduler=args.scheduler,
        )
        start = time.perf_counter()
        result = probcast.run(request)
        out[f"{label}_s"] = time.perf_counter() - start
        log.info("%s CONUS run: %.1f s", label, out[f"{label}_s"])
        out["products"] = sorted(result.paths)
        out["output_mib"] = sum(_size(Path(p)) for p in result.paths.values()) / 2**20
        _save(args, "conus_grid", out)
    return out


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _save(args: argparse.Namespace, part: str, result: dict[str, object]) -> None:
    result = {**result, "device": _device(), "peak_rss_mib": _peak_mib(), "scale": args.scale}
    path = Path(args.out) / f"{part}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(path)


def _child(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("absl", "jax", "orbax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    part = {"throughput": part_throughput, "conus_train": part_conus_train}.get(
        args.part, part_conus_grid
    )
    with tempfile.TemporaryDirectory(prefix=f"probcast-gpu-{args.part}-") as tmp:
        result = part(args, Path(tmp))
    _save(args, args.part, result)
    return 0


def _table(out: Path) -> str:
    lines = ["| part | figure | value |", "|---|---|---|"]
    for part in PARTS:
        path = out / f"{part}.json"
        if not path.exists():
            lines.append(f"| {part} | (no result) | |")
            continue
        res = json.loads(path.read_text())
        for key, value in res.items():
            if isinstance(value, dict):
                for k2, v2 in value.items():
                    lines.append(f"| {part} | {key}.{k2} | {_fmt(v2)} |")
            else:
                lines.append(f"| {part} | {key} | {_fmt(value)} |")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for results and logs")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of CONUS sizes")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all parts")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--dtypes", default="float32,bfloat16,float16", help="throughput dtypes")
    parser.add_argument("--tile", type=int, default=1024, help="grid tile (points per side)")
    parser.add_argument("--scheduler", default=None, help="dask scheduler for grid products")
    parser.add_argument(
        "--train-override", action="append", default=[], help="e.g. train.epochs=30"
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.part:
        return _child(args)
    start = time.perf_counter()
    parts = [p for p in args.parts.split(",") if p]
    for i, part in enumerate(parts):
        left = args.budget - (time.perf_counter() - start)
        share = SHARE[part] / sum(SHARE[p] for p in parts[i:])
        timeout = max(30.0, left * share)
        cmd = [sys.executable, __file__, f"--part={part}", *sys.argv[1:]]
        print(f"== {part} (timeout {timeout:.0f} s)", flush=True)
        t0 = time.perf_counter()
        with (Path(args.out) / f"{part}.log").open("w") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                rc: object = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the part and any training it started
                proc.wait()
                rc = "timeout"
        print(f"   {part}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
    table = _table(Path(args.out))
    (Path(args.out) / "gpu_suite.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
