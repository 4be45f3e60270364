"""Benchmark: national-grid products from distribution parameters, on synthetic and real grids.

Builds 51 members and 19 percentiles (and, on the real grids, threshold probabilities) from
distribution parameters, bit-rounds them to 99 % of their information and writes compressed
NetCDF (or Zarr) on 2 dask threads. Three grids:

* ``--grid synthetic``: 7 variables on an NBM-CONUS-sized Lambert grid (2345 x 1597 at full
  size; ``--small`` for 1/20 to 1/5 of it), smooth synthetic parameters, one lead time;
* ``--grid icp``: the real ICP WRF 601 x 501 4-km grid (``icp-wrf-precip-grid``, 9 cases): a
  censored-logistic tp forecast whose location is the mean and whose scale grows with the
  spread of the three WRF configurations, with the grid's float64 latitude/longitude as read
  from the prepared file;
* ``--grid gfsnam``: the real GFS/NAM 60-km CONUS land points (``gfsnam-precip-grid``, 2352
  scattered points along a 1-D ``point`` dim, 121 test cases): a censored-logistic tp
  forecast centred on the model's precipitation with a scale growing with it.

Real grids need ``PROBCAST_DATA_MIRROR`` (or network) for ``probcast data prepare``;
``--cases N`` keeps the first N reference times.

``--method`` chooses the bits kept: ``chunk`` (per dask block, the default of
``write_products``), ``central`` (one number per variable from its central block, as before)
or ``both``. With one method and one scale the run is this process alone, so
``/usr/bin/time`` measures the whole process (imports, set-up, JAX compilations, build and
write); ``process_s`` and ``cpu_s`` are its wall and CPU seconds up to the result. Otherwise
each row runs in a fresh subprocess (its peak resident memory is its own), methods
alternating, and ``both`` adds the comparison columns. "info min" is the smallest fraction of
a block's real information kept, over every block of every rounded variable (probabilities,
stored exactly, excluded); with ``both``, the central bits are measured on the same per-block
samples, outside the timing. "raw" is the float32 size of the data and coordinates (computed,
not written).

"keepbits" are the bits the information chose (per block); under the resolution floor of
``probcast.defaults.PRODUCT_RESOLUTION`` values keep more where their magnitude needs them,
and "step" is the largest ``least_significant_step`` (spacing of the stored values, K, m s-1,
mm or fraction) of the members and percentiles. ``--no-floor`` writes without the floor (the
information's bits alone, as before the floor existed).

``--levels`` instead writes the products once (bits per chunk), reads the bit-rounded values
back and rewrites them with each lossless codec and level: output size, ratio, write and read
time per level, the measurement behind the default level of ``products.write``.

    .venv/bin/python benchmarks/products_grid.py --small            # quick check (~2 min)
    .venv/bin/python benchmarks/products_grid.py --scales 1.0       # CONUS, bits per chunk
    .venv/bin/python benchmarks/products_grid.py --scales 1.0 --method both
    .venv/bin/python benchmarks/products_grid.py --grid icp         # real grid
    .venv/bin/python benchmarks/products_grid.py --grid gfsnam --levels --cases 40
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

START = time.perf_counter()
FULL = (1597, 2345)
FULL_SCALES = (0.25, 0.5, 0.75, 1.0)
SMALL_SCALES = (0.05, 0.1, 0.15, 0.2)
METHODS = ("central", "chunk")
METHOD_CHOICES = ("chunk", "central", "both")
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # Parallelism comes from the 2 dask threads; keep XLA single-threaded inside each.
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}
ICP_THRESHOLDS = {"tp": [0.1, 1.0, 5.0, 10.0]}
GRIDS = ("synthetic", "icp", "gfsnam")
NETCDF_LEVELS = {"zstd": (1, 3, 5, 9, 15, 19), "zlib": (1, 4, 6, 9)}
ZARR_LEVELS = {"blosc-zstd": (1, 3, 5, 7, 9)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stored_bytes(ds) -> int:
    """Bytes of an uncompressed float32 NetCDF: float32 data, auxiliary lat/lon as float32."""
    from probcast.products import cf

    total = 0
    for name, var in ds.variables.items():
        aux = var.dims != (name,) and (var.ndim >= 2 or str(name) in cf.LATLON_NAMES)
        itemsize = 4 if (name in ds.data_vars or aux) else var.dtype.itemsize
        total += var.size * itemsize
    return total


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _prepared(name: str, cases: int | None):
    import xarray as xr

    from probcast.data.prepare import prepare

    raw = xr.open_dataset(prepare(name).paths["test"])
    return raw.isel(forecast_reference_time=slice(cases))


def _icp_params(cases: int | None = None):
    """Censored-logistic tp parameters from the three WRF configurations of the ICP set."""
    import numpy as np
    import xarray as xr

    raw = _prepared("icp-wrf-precip-grid", cases)
    members = xr.concat([raw[v] for v in ("fc_tp", "fc_tp_wrf2caps", "fc_tp_wrf4ncep")], "m")
    loc = members.mean("m").astype(np.float32)
    scale = (0.2 + 0.5 * members.std("m")).astype(np.float32)
    grid = raw.drop_vars(list(raw.data_vars)).drop_vars("valid_time")
    params = grid.assign(tp_loc=loc, tp_scale=scale)
    return params, {"tp": "censored_logistic"}, ["members", "percentiles", "probabilities"]


def _gfsnam_params(cases: int | None = None):
    """Censored-logistic tp parameters on the GFS/NAM points: scale grows with the amount."""
    import numpy as np

    raw = _prepared("gfsnam-precip-grid", cases)
    fc = raw["fc_tp"].fillna(0.0).clip(min=0.0)
    grid = raw.drop_vars(list(raw.data_vars)).drop_vars("valid_time")
    params = grid.assign(tp_loc=fc.astype(np.float32), tp_scale=(0.3 + 0.4 * fc).astype(np.float32))
    return params, {"tp": "censored_logistic"}, ["members", "percentiles", "probabilities"]


def _synthetic_params(ny: int, nx: int):
    from probcast.testing import products as synthetic

    params = synthetic.params((ny, nx), variables=tuple(synthetic.FAMILIES))
    return params, synthetic.FAMILIES, ["members", "percentiles"]


def _resolution(args: argparse.Namespace):
    from probcast import defaults

    return None if getattr(args, "no_floor", False) else defaults.PRODUCT_RESOLUTION


def _write(ds, path: Path, method: str, resolution):
    """Write one product with the ``method`` way of choosing bits; return the job."""
    from probcast.products import compress, write

    quantised = compress.quantize_probabilities(ds)
    fixed = compress.information_keepbits(quantised) if method == "central" else None
    fixed = {k: v for k, v in (fixed or {}).items() if k not in compress.exact_keepbits(quantised)}
    plan = compress.plan_rounding(quantised, keepbits=fixed or None, resolution=resolution)
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


def _params(grid: str, scale: float, cases: int | None):
    if grid == "icp":
        return _icp_params(cases)
    if grid == "gfsnam":
        return _gfsnam_params(cases)
    return _synthetic_params(round(FULL[0] * scale), round(FULL[1] * scale))


def _label(grid: str, params) -> tuple[str, int]:
    """Grid label (spatial sizes, cases) and the number of grid points."""
    if "point" in params.dims:
        shape, points = f"{params.sizes['point']} points", params.sizes["point"]
    else:
        ny, nx = params.sizes["y"], params.sizes["x"]
        shape, points = f"{nx}x{ny}", nx * ny
    cases = params.sizes.get("forecast_reference_time")
    return f"{grid} {shape}" + (f" x {cases} cases" if cases else ""), points


def _build(params, families, kinds):
    from probcast.products import build_products

    return build_products(
        params, families=families, products=kinds, n_members=51, thresholds=ICP_THRESHOLDS
    )


def run_one(
    grid: str, scale: float, method: str, args: argparse.Namespace, out: Path
) -> dict[str, object]:
    """Build and write the products of one grid with one method; return timings and sizes."""
    from probcast.products import compress

    t0 = time.perf_counter()
    params, families, kinds = _params(grid, scale, args.cases)
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    products = _build(params, families, kinds)
    jobs, written, raw, bits, steps = [], 0, 0, [], [0.0]
    for name, ds in products.items():
        path = out / f"{name}{args.suffix}"
        job = _write(ds, path, method, _resolution(args))
        jobs.append((job, compress.quantize_probabilities(ds)))
        written += _size_on_disk(path)
        raw += _stored_bytes(ds)
        bits += [b.keepbits for blocks in job.blocks.values() for b in blocks]
        if not name.startswith("probabilities"):
            steps += [b.step or 0.0 for blocks in job.blocks.values() for b in blocks]
    elapsed = time.perf_counter() - t1
    process_s = time.perf_counter() - START
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # Fixed (central) bits are not measured per block here: "both" measures them on the
    # chunk row's samples (info_min_central).
    low = min(_information(j, ds) for j, ds in jobs) if method == "chunk" else None
    info: dict[str, object] = {"info_min": None if low is None else round(low, 4)}
    if method == "chunk" and args.compare:  # what central-block bits keep, same samples
        low = min(_information(j, ds, compress.information_keepbits(ds)) for j, ds in jobs)
        info["info_min_central"] = round(low, 4)
    label, points = _label(grid, params)
    return {
        "grid": label,
        "method": method,
        "points": points,
        "setup_s": round(setup_s, 1),
        "build_write_s": round(elapsed, 1),
        "process_s": round(process_s, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(_rss_mb()),
        "output_mb": round(written / 1e6, 1),
        "raw_mb": round(raw / 1e6, 1),
        "ratio": round(raw / written, 1),
        **info,
        "keepbits": f"{min(bits)}-{max(bits)}",
        "step": max(steps),
    }


def _rounded_products(grid: str, scale: float, args: argparse.Namespace, out: Path):
    """Write the products once (bits per chunk) and read the bit-rounded values back."""
    import xarray as xr

    from probcast.products import write_products

    params, families, kinds = _params(grid, scale, args.cases)
    loaded, raw = {}, 0
    for name, ds in _build(params, families, kinds).items():
        path = out / f"{name}{args.suffix}"
        write_products(ds, path, resolution=_resolution(args))
        raw += _stored_bytes(ds)
        with xr.open_dataset(path, engine="zarr" if args.suffix == ".zarr" else None) as back:
            back = back.load()
        for var in back.variables.values():  # the writer's own encoding, not the file's
            var.encoding = {k: v for k, v in var.encoding.items() if k in ("units", "calendar")}
        for v in back.data_vars:  # the same storage chunks as the product
            back[v] = back[v].chunk(dict(ds[v].chunksizes))
        loaded[name] = back
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return params, loaded, raw


def run_levels(grid: str, scale: float, args: argparse.Namespace, out: Path) -> dict[str, object]:
    """Rewrite the bit-rounded products with every codec and level: size and time of each."""
    import xarray as xr

    from probcast.products import write_products

    params, loaded, raw = _rounded_products(grid, scale, args, out)
    zarr = args.suffix == ".zarr"
    rows = []
    for codec, levels in (ZARR_LEVELS if zarr else NETCDF_LEVELS).items():
        for level in levels:
            written, write_s, read_s = 0, 0.0, 0.0
            for name, ds in loaded.items():
                path = out / f"{name}.{codec}{level}{args.suffix}"
                t0 = time.perf_counter()
                write_products(
                    ds,
                    path,
                    inflevel=1.0,  # already rounded: only the lossless codec differs
                    compression=None if zarr else codec,
                    complevel=level,
                    probability_precision=None,
                )
                write_s += time.perf_counter() - t0
                written += _size_on_disk(path)
                t0 = time.perf_counter()
                with xr.open_dataset(path, engine="zarr" if zarr else None) as back:
                    back.load()
                read_s += time.perf_counter() - t0
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            rows.append(
                {
                    "codec": codec,
                    "level": level,
                    "output_mb": round(written / 1e6, 2),
                    "ratio": round(raw / written, 2),
                    "write_s": round(write_s, 2),
                    "read_s": round(read_s, 2),
                }
            )
    return {"grid": _label(grid, params)[0], "raw_mb": round(raw / 1e6, 1), "levels": rows}


def _in_process(
    grid: str, scale: float, method: str, args: argparse.Namespace, out: Path
) -> dict[str, object]:
    """Run one row here: thread settings first (before NumPy, JAX and dask load)."""
    os.environ.update(THREAD_ENV)
    import dask

    dask.config.set(scheduler="threads", num_workers=args.workers)
    if method == "levels":
        return run_levels(grid, scale, args, out)
    return run_one(grid, scale, method, args, out)


def _child(grid: str, scale: float, method: str, args: argparse.Namespace) -> dict[str, object]:
    out = Path(tempfile.mkdtemp(prefix="probcast-bench-"))
    try:
        cmd = [sys.executable, __file__, "--one", f"{grid}:{scale}:{method}", "--out", str(out)]
        cmd += ["--workers", str(args.workers), "--suffix", args.suffix]
        cmd += ["--cases", str(args.cases)] if args.cases else []
        cmd += ["--compare"] if args.method == "both" else []
        cmd += ["--no-floor"] if getattr(args, "no_floor", False) else []
        env = {**os.environ, **THREAD_ENV}
        done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


HEAD = ["grid", "method", "build_write_s", "time_vs_central", "peak_rss_mb", "output_mb"]
HEAD += ["raw_mb", "ratio", "info_min", "keepbits", "step"]


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


LEVEL_HEAD = ["codec", "level", "output_mb", "ratio", "write_s", "read_s"]


def _level_table(result: dict) -> str:
    """Markdown table of the codec levels, write/read time relative to the fastest level."""
    rows = result["levels"]
    fastest = min(float(r["write_s"]) for r in rows)
    head = [*LEVEL_HEAD, "write_vs_fastest"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for row in rows:
        row["write_vs_fastest"] = round(float(row["write_s"]) / fastest, 2)
        lines.append(" | ".join(str(row[h]) for h in head))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="synthetic", choices=GRIDS)
    parser.add_argument("--small", action="store_true", help="quick mode: grids up to 1/5 size")
    parser.add_argument("--scales", help="comma-separated fractions of the CONUS grid")
    parser.add_argument("--cases", type=int, help="real grids: first N reference times only")
    parser.add_argument("--levels", action="store_true", help="sweep the codec levels instead")
    parser.add_argument("--workers", type=int, default=2, help="dask threads (default 2)")
    parser.add_argument("--suffix", default=".nc", choices=[".nc", ".zarr"])
    parser.add_argument(
        "--method", default="chunk", choices=METHOD_CHOICES, help="bits kept (default chunk)"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="no resolution floor (information bits alone)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--compare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        grid, scale, method = args.one.split(":")
        print(json.dumps(_in_process(grid, float(scale), method, args, Path(args.out))))
        return 0
    if args.grid != "synthetic":
        scales: tuple[float, ...] = (1.0,)
    elif args.scales:
        scales = tuple(float(v) for v in args.scales.split(","))
    else:
        scales = SMALL_SCALES if args.small else FULL_SCALES
    header = f"{args.grid} grid, {args.workers} dask threads, {args.suffix}, inflevel 0.99"
    header += ", no resolution floor" if args.no_floor else ", resolution floor"
    if args.levels:
        for scale in scales:
            result = _child(args.grid, scale, "levels", args)
            print(f"{header}: {result['grid']}, raw {result['raw_mb']} MB")
            print(_level_table(result))
        return 0
    if args.method != "both" and len(scales) == 1:  # the whole process is the measurement
        out = Path(tempfile.mkdtemp(prefix="probcast-bench-"))
        try:
            row = _in_process(args.grid, scales[0], args.method, args, out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print(header)
        print(json.dumps(row))
        return 0
    rows = []
    methods = METHODS if args.method == "both" else (args.method,)
    for scale in scales:
        for method in methods:
            rows.append(_child(args.grid, scale, method, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(header)
    print(_table(rows) if args.method == "both" else "\n".join(json.dumps(r) for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
