"""Benchmark: national-grid products from distribution parameters, on synthetic and real grids.

Builds 51 members and 19 percentiles (and, on the real grid, threshold probabilities) from
distribution parameters, bit-rounds them to 99 % of their information and writes compressed
NetCDF (or Zarr) on 2 dask threads. Two grids:

* ``--grid synthetic``: 7 variables on an NBM-CONUS-sized Lambert grid (2345 x 1597 at full
  size; ``--small`` for 1/20 to 1/5 of it), smooth synthetic parameters, one lead time;
* ``--grid icp``: the real ICP WRF 601 x 501 4-km grid (``icp-wrf-precip-grid``, 9 cases): a
  censored-logistic tp forecast whose location is the mean and whose scale grows with the
  spread of the three WRF configurations, with the grid's float64 latitude/longitude as read
  from the prepared file (``probcast data prepare icp-wrf-precip-grid`` first).

Each row runs in a fresh subprocess (its peak resident memory is its own), for two ways of
choosing the bits kept, run alternately: ``central`` (one number per variable from its central
block, as before) and ``chunk`` (per dask block, the default of ``write_products``). "info
min" is the smallest fraction of a block's real information kept, over every block of every
rounded variable (probabilities, stored exactly, excluded); for ``central`` it is measured on
the same per-block samples, outside the timing. "raw" is the float32 size of the data and
coordinates (computed, not written).

    .venv/bin/python benchmarks/products_grid.py --small            # quick check (~2 min)
    .venv/bin/python benchmarks/products_grid.py --scales 1.0       # CONUS
    .venv/bin/python benchmarks/products_grid.py --grid icp         # real grid
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
METHODS = ("central", "chunk")
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # Parallelism comes from the 2 dask threads; keep XLA single-threaded inside each.
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}
ICP_THRESHOLDS = {"tp": [0.1, 1.0, 5.0, 10.0]}


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


def _icp_params():
    """Censored-logistic tp parameters from the three WRF configurations of the ICP set."""
    import numpy as np
    import xarray as xr

    from probcast.data.prepare import prepare

    path = prepare("icp-wrf-precip-grid").paths["test"]
    raw = xr.open_dataset(path)
    members = xr.concat([raw[v] for v in ("fc_tp", "fc_tp_wrf2caps", "fc_tp_wrf4ncep")], "m")
    loc = members.mean("m").astype(np.float32)
    scale = (0.2 + 0.5 * members.std("m")).astype(np.float32)
    grid = raw.drop_vars(list(raw.data_vars)).drop_vars("valid_time")
    params = grid.assign(tp_loc=loc, tp_scale=scale)
    return params, {"tp": "censored_logistic"}, ["members", "percentiles", "probabilities"]


def _synthetic_params(ny: int, nx: int):
    from probcast.testing import products as synthetic

    params = synthetic.params((ny, nx), variables=tuple(synthetic.FAMILIES))
    return params, synthetic.FAMILIES, ["members", "percentiles"]


def _write(ds, path: Path, method: str):
    """Write one product with the ``method`` way of choosing bits; return the job."""
    from probcast.products import compress, write

    quantised = compress.quantize_probabilities(ds)
    fixed = compress.information_keepbits(quantised) if method == "central" else None
    fixed = {k: v for k, v in (fixed or {}).items() if k not in compress.exact_keepbits(quantised)}
    plan = compress.plan_rounding(quantised, keepbits=fixed or None)
    return write.write_job(quantised, path, plan, inflevel=0.99)


def _information(job, ds, bits=None) -> float:
    """Smallest fraction of a block's information kept, over the analysed blocks of ``job``.

    With ``bits`` (variable -> keepbits), what those bits would keep in every block instead.
    """
    from probcast.products import compress

    exact = compress.exact_keepbits(ds)
    low = 1.0
    for name, blocks in job.blocks.items():
        for block in blocks:
            if name in exact or block.kept is None:
                continue
            keep = block.keepbits if bits is None else bits[name]
            low = min(low, float(block.kept[keep]))
    return low


def run_one(grid: str, scale: float, method: str, workers: int, out: Path, suffix: str) -> dict:
    """Build and write the products of one grid with one method; return timings and sizes."""
    import dask

    from probcast.products import build_products, compress

    dask.config.set(scheduler="threads", num_workers=workers)
    t0 = time.perf_counter()
    if grid == "icp":
        params, families, kinds = _icp_params()
    else:
        params, families, kinds = _synthetic_params(round(FULL[0] * scale), round(FULL[1] * scale))
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    products = build_products(
        params, families=families, products=kinds, n_members=51, thresholds=ICP_THRESHOLDS
    )
    jobs, written, raw, bits = [], 0, 0, []
    for name, ds in products.items():
        path = out / f"{name}{suffix}"
        job = _write(ds, path, method)
        jobs.append((job, compress.quantize_probabilities(ds)))
        written += _size_on_disk(path)
        raw += _stored_bytes(ds)
        bits += [b.keepbits for blocks in job.blocks.values() for b in blocks]
    elapsed = time.perf_counter() - t1
    info = {"info_min": round(min(_information(j, ds) for j, ds in jobs), 4)}
    if method == "chunk":  # what the central-block bits keep, on the same block samples
        low = min(_information(j, ds, compress.information_keepbits(ds)) for j, ds in jobs)
        info["info_min_central"] = round(low, 4)
    ny, nx = params.sizes["y"], params.sizes["x"]
    return {
        "grid": f"{grid} {nx}x{ny}",
        "method": method,
        "points": nx * ny,
        "setup_s": round(setup_s, 1),
        "build_write_s": round(elapsed, 1),
        "peak_rss_mb": round(_rss_mb()),
        "output_mb": round(written / 1e6, 1),
        "raw_mb": round(raw / 1e6, 1),
        "ratio": round(raw / written, 1),
        **info,
        "keepbits": f"{min(bits)}-{max(bits)}",
    }


def _child(grid: str, scale: float, method: str, args: argparse.Namespace) -> dict[str, object]:
    out = Path(tempfile.mkdtemp(prefix="probcast-bench-"))
    try:
        cmd = [sys.executable, __file__, "--one", f"{grid}:{scale}:{method}", "--out", str(out)]
        cmd += ["--workers", str(args.workers), "--suffix", args.suffix]
        env = {**os.environ, **THREAD_ENV}
        done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


HEAD = ["grid", "method", "build_write_s", "time_vs_central", "peak_rss_mb", "output_mb"]
HEAD += ["raw_mb", "ratio", "info_min", "keepbits"]


def _table(rows: list[dict[str, object]]) -> str:
    """Markdown table; the central row takes its info_min from the chunk row's measurement."""
    lines = [" | ".join(HEAD), " | ".join("---" for _ in HEAD)]
    for central, chunk in zip(rows[::2], rows[1::2], strict=True):
        central["info_min"] = chunk["info_min_central"]
        central["time_vs_central"] = 1.0
        ratio = float(chunk["build_write_s"]) / float(central["build_write_s"])  # type: ignore[arg-type]
        chunk["time_vs_central"] = round(ratio, 2)
        for row in (central, chunk):
            lines.append(" | ".join(str(row[h]) for h in HEAD))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="synthetic", choices=["synthetic", "icp"])
    parser.add_argument("--small", action="store_true", help="quick mode: grids up to 1/5 size")
    parser.add_argument("--scales", help="comma-separated fractions of the CONUS grid")
    parser.add_argument("--workers", type=int, default=2, help="dask threads (default 2)")
    parser.add_argument("--suffix", default=".nc", choices=[".nc", ".zarr"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        grid, scale, method = args.one.split(":")
        row = run_one(grid, float(scale), method, args.workers, Path(args.out), args.suffix)
        print(json.dumps(row))
        return 0
    if args.grid == "icp":
        scales: tuple[float, ...] = (1.0,)
    elif args.scales:
        scales = tuple(float(v) for v in args.scales.split(","))
    else:
        scales = SMALL_SCALES if args.small else FULL_SCALES
    rows = []
    for scale in scales:
        for method in METHODS:
            rows.append(_child(args.grid, scale, method, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"{args.grid} grid, {args.workers} dask threads, {args.suffix}, inflevel 0.99")
    print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
