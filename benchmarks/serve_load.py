"""Bounded load test of ``probcast serve`` on the loopback interface.

Usage::

    .venv/bin/python benchmarks/serve_load.py [--stations 12000] [--sizes 1,100,10000]
        [--requests 200,50,10] [--clients 4] [--format json|parquet] [--max-seconds 900]
        [--out serve_load.json]

It trains a small model (``--config=tiny``, one epoch, on a few synthetic stations), writes
one cycle's input for ``--stations`` synthetic stations on a 0.05-degree lattice
(``probcast.testing.stations.station_table``, positions spread out), starts ``probcast serve``
on 127.0.0.1 (a real uvicorn process), waits for ``/ready``, sends two warm-up requests per
size (not counted), then for every size fires the given number of ``POST /forecast`` requests
for that many lat/lon points (one lead time, so a row per point) from ``--clients``
concurrent clients (``httpx``), and prints requests/s, p50/p99 latency and rows/s per size.
It stops the server and removes its files at the end, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from probcast import io
from probcast.testing.stations import station_table

CYCLE = pd.Timestamp("2021-02-10", tz="UTC")
LAT0, LON0, STEP, WIDTH = 40.0, 0.0, 0.05, 120


def place(table: pd.DataFrame) -> pd.DataFrame:
    """Spread the stations ``ST<n>`` on a lattice of ``WIDTH`` columns, altitudes 0-950 m."""
    n = table["station"].str[2:].astype(int).to_numpy()
    table["latitude"] = LAT0 + STEP * (n // WIDTH)
    table["longitude"] = LON0 + STEP * (n % WIDTH)
    table["altitude"] = 50.0 * (n % 20)
    return table


def train(root: Path) -> Path:
    """A tiny model trained on 6 stations x 30 days (about a minute on 2 cores)."""
    from probcast.cli import main

    data = place(station_table(n_stations=6, n_inits=30, seed=1))
    data.to_csv(root / "train.csv", index=False)
    rc = main(
        [
            "train",
            "--config=tiny",
            f"--workdir={root / 'model'}",
            f"--config.data.path={root / 'train.csv'}",
            "--config.train.epochs=1",
            "--config.train.n_seeds=1",
            "--config.tracking.backend=none",
        ]
    )
    if rc:
        raise SystemExit(f"training failed (rc={rc})")
    return root / "model"


def cycle_input(root: Path, n_stations: int) -> Path:
    """One cycle's input: every station, leads 6/12/24 h, no observations.

    The values of 20 synthetic stations are repeated (``station_table`` offsets each station's
    forecast by its number, which leaves the physical range beyond a few hundred stations).
    """
    base = station_table(n_stations=20, n_inits=1, start=f"{CYCLE:%Y-%m-%d}", seed=2)
    base = base.drop(columns=["obs_t2m", "obs_tp"])
    copies = -(-n_stations // 20)
    table = pd.concat([base] * copies, ignore_index=True)
    own = base["station"].str[2:].astype(int).to_numpy()
    number = np.repeat(np.arange(copies) * 20, len(base)) + np.tile(own, copies)
    table["station"] = [f"ST{k:05d}" for k in number]
    table = place(table[number < n_stations].reset_index(drop=True))
    (root / "inputs").mkdir()
    path = root / "inputs" / f"{CYCLE:%Y%m%d%H}.parquet"
    io.write_with(path, lambda tmp: table.to_parquet(tmp, index=False))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(pipeline: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``probcast serve`` on 127.0.0.1:``port``, ready (model loaded) when this returns."""
    cmd = [sys.executable, "-m", "probcast.cli", "serve", f"--pipeline={pipeline}"]
    cmd += [f"--port={port}", "--max-points=10000", "--max-body-bytes=4194304"]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"probcast serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=60).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("probcast serve was not ready within 180 s")


def bodies(n_points: int, n_stations: int, count: int, seed: int) -> list[bytes]:
    """``count`` request bodies of ``n_points`` points near random stations."""
    rng = np.random.default_rng(seed)
    rows = -(-n_stations // WIDTH)
    out = []
    for _ in range(count):
        k = rng.integers(0, n_stations, n_points)
        lat = LAT0 + STEP * (k // WIDTH) + rng.uniform(-0.01, 0.01, n_points)
        lon = LON0 + STEP * (k % WIDTH) + rng.uniform(-0.01, 0.01, n_points)
        lat = np.minimum(lat, LAT0 + STEP * (rows - 1))
        points = [
            {"latitude": round(a, 4), "longitude": round(b, 4)}
            for a, b in zip(lat, lon, strict=True)
        ]
        body = {"cycle": f"{CYCLE:%Y-%m-%dT%HZ}", "points": points, "lead_times": [24]}
        out.append(json.dumps(body).encode())
    return out


def fire(base: str, payloads: list[bytes], clients: int, fmt: str, stop_at: float) -> dict:
    """Send ``payloads`` from ``clients`` threads; latencies of the 2xx answers."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(reversed(payloads))
    accept = "application/vnd.apache.parquet" if fmt == "parquet" else "application/json"

    def worker() -> None:
        with httpx.Client(timeout=300, headers={"accept": accept}) as client:
            while time.monotonic() < stop_at:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                t0 = time.perf_counter()
                reply = client.post(
                    f"{base}/forecast", content=body, headers={"content-type": "application/json"}
                )
                took = time.perf_counter() - t0
                with lock:
                    if reply.status_code == 200:
                        latencies.append(took)
                    else:
                        errors.append(f"{reply.status_code}: {reply.text[:200]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000.0
    return {
        "ok": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 3) if wall else None,
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stations", type=int, default=12_000)
    p.add_argument("--sizes", default="1,100,10000", help="points per request")
    p.add_argument("--requests", default="200,50,10", help="requests per size")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--format", choices=["json", "parquet"], default="json")
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop firing after this")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    counts = [int(v) for v in args.requests.split(",")]
    if len(sizes) != len(counts):
        p.error("--sizes and --requests need as many values")
    stop_at = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="probcast-serve-load-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        model = train(root)
        cycle_input(root, args.stations)
        pipeline = root / "ops.yaml"
        spec = {
            "model": str(model),
            "input": "inputs/{cycle:%Y%m%d%H}.parquet",
            "products": {"output": "pred_{cycle:%Y%m%d%H}.parquet"},
            "destinations": ["published"],
        }
        pipeline.write_text(yaml.safe_dump(spec))
        print(f"model and {args.stations}-station cycle ready in {time.perf_counter() - t0:.0f} s")
        port = _free_port()
        proc = start_server(pipeline, port, root / "serve.log")
        base = f"http://127.0.0.1:{port}"
        results = []
        try:
            for size, count in zip(sizes, counts, strict=True):
                warm = bodies(size, args.stations, 2, seed=size + 1)
                fire(base, warm, 1, args.format, stop_at)
                run = fire(
                    base,
                    bodies(size, args.stations, count, seed=size),
                    args.clients,
                    args.format,
                    stop_at,
                )
                run.update(points=size, requests=count, clients=args.clients)
                run["rows_per_s"] = round((run["requests_per_s"] or 0.0) * size, 1)
                results.append(run)
                print(json.dumps(run), flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("\n| points/request | requests | clients | req/s | p50 ms | p99 ms | rows/s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['points']:,} | {r['ok']} | {r['clients']} | {r['requests_per_s']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['rows_per_s']:,} | {r['errors']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
