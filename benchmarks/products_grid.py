"""Benchmark: national-grid products from distribution parameters.

Builds 51 members and 19 percentiles of 7 variables for one lead time from synthetic
distribution parameters on an NBM-CONUS-sized Lambert grid (2345 x 1597 at full size),
bit-rounds them to 99 % of their information and writes compressed NetCDF (or Zarr),
on 2 dask threads. Each grid size runs in a fresh subprocess so that its peak resident
memory (ru_maxrss) is its own. Uncompressed size = float32 data + coordinates as stored,
i.e. what an uncompressed float32 NetCDF would hold (computed, not written).

    .venv/bin/python benchmarks/products_grid.py --small     # quick sanity check (~1 min)
    .venv/bin/python benchmarks/products_grid.py             # full run (4 sizes up to CONUS)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = (1597, 2345)
FULL_SCALES = (0.25, 0.5, 0.75, 1.0)
SMALL_SCALES = (0.05, 0.1, 0.15, 0.2)
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # Parallelism comes from the 2 dask threads; keep XLA single-threaded inside each.
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stored_bytes(ds) -> int:
    """Bytes of an uncompressed float32 NetCDF: float32 data, 2-D lat/lon as float32."""
    total = 0
    for name, var in ds.variables.items():
        itemsize = 4 if (name in ds.data_vars or var.ndim >= 2) else var.dtype.itemsize
        total += var.size * itemsize
    return total


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_one(ny: int, nx: int, workers: int, out: Path, suffix: str) -> dict[str, object]:
    """Build and write members + percentiles on one grid; return timings and sizes."""
    import dask

    from probcast.products import build_products, write_products
    from probcast.testing import products as synthetic

    dask.config.set(scheduler="threads", num_workers=workers)
    t0 = time.perf_counter()
    params = synthetic.params((ny, nx), variables=tuple(synthetic.FAMILIES))
    setup_s = time.perf_counter() - t0
    rss_setup = _rss_mb()
    t1 = time.perf_counter()
    products = build_products(
        params, families=synthetic.FAMILIES, products=["members", "percentiles"], n_members=51
    )
    keepbits: dict[str, dict[str, int]] = {}
    written = raw = 0
    for name, ds in products.items():
        path = out / f"{name}{suffix}"
        keepbits[name] = write_products(ds, path, inflevel=0.99)
        written += _size_on_disk(path)
        raw += _stored_bytes(ds)
    elapsed = time.perf_counter() - t1
    return {
        "grid": f"{nx}x{ny}",
        "points": nx * ny,
        "setup_s": round(setup_s, 1),
        "build_write_s": round(elapsed, 1),
        "rss_setup_mb": round(rss_setup),
        "peak_rss_mb": round(_rss_mb()),
        "output_mb": round(written / 1e6, 1),
        "raw_mb": round(raw / 1e6, 1),
        "ratio": round(raw / written, 1),
        "keepbits": keepbits,
    }


def _child(ny: int, nx: int, workers: int, suffix: str) -> dict[str, object]:
    out = Path(tempfile.mkdtemp(prefix="probcast-bench-"))
    try:
        cmd = [sys.executable, __file__, "--one", f"{ny}x{nx}", "--workers", str(workers)]
        cmd += ["--suffix", suffix, "--out", str(out)]
        env = {**os.environ, **THREAD_ENV}
        done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _table(rows: list[dict[str, object]]) -> str:
    head = ["grid", "points", "setup_s", "build_write_s", "peak_rss_mb", "output_mb", "raw_mb"]
    head += ["ratio", "keepbits"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for row in rows:
        bits = [b for product in row["keepbits"].values() for b in product.values()]  # type: ignore[union-attr]
        cells = [str(row[h]) for h in head[:-1]] + [f"{min(bits)}-{max(bits)}"]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="quick mode: grids up to 1/5 size")
    parser.add_argument("--workers", type=int, default=2, help="dask threads (default 2)")
    parser.add_argument("--suffix", default=".nc", choices=[".nc", ".zarr"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        ny, nx = (int(v) for v in args.one.split("x"))
        print(json.dumps(run_one(ny, nx, args.workers, Path(args.out), args.suffix)))
        return 0
    scales = SMALL_SCALES if args.small else FULL_SCALES
    rows = []
    for scale in scales:
        ny, nx = round(FULL[0] * scale), round(FULL[1] * scale)
        rows.append(_child(ny, nx, args.workers, args.suffix))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        f"members (51) + percentiles (19) of 7 variables, 1 lead time, "
        f"{args.workers} dask threads, {args.suffix}, inflevel 0.99"
    )
    print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
