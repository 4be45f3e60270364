"""Build throughput of ``probcast data build`` over a synthetic GRIB archive.

Prints cycles per minute and peak memory for builds of a synthetic GRIB1 archive
(``probcast.testing.archives``, noisy fields on a regular grid) against a synthetic
observation table.

    python benchmarks/build_throughput.py                 # default size, serial
    python benchmarks/build_throughput.py --large         # larger archive
    python benchmarks/build_throughput.py --workers 2     # serial, then 2 Dask processes
    python benchmarks/build_throughput.py --archive-gib 10 --memory-limit-gib 2 [--workers 2]

The first forms build in this process (peak memory: max RSS of this process and of its
worker processes). ``--workers N`` builds the same archive twice in one run, serially and
on N local processes, checks that both tables are identical and reports both rates.

``--archive-gib G --memory-limit-gib M`` is the larger-than-memory check: it writes a
synthetic archive of about G GiB under a temporary folder in /tmp (one cycle is encoded,
the others are copies of its messages with their dates changed, so writing costs disk
time, not encoding time; removed at the end), then runs ``probcast data build`` in a
subprocess whose memory is limited to M GiB and reports cycles per minute, peak RSS and
the archive size. The limit is on resident memory (RSS) summed over the build process and
its worker processes, read from ``/proc/PID/statm`` every 50 ms; the process group is killed
when it goes over (exit status "killed: over the memory limit"). ``RLIMIT_AS`` was not used:
it limits virtual address space per process, which counts reservations that are never
touched (thread stacks, allocator arenas, Arrow's memory pool, memory-mapped libraries) and
not the sum over worker processes, so it would fail builds that fit and pass pools that do
not. Polling can miss a spike shorter than 50 ms; ``max RSS`` of the largest single process
(``getrusage(RUSAGE_CHILDREN)``, exact) is reported next to it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _rss import run_limited

from probcast.sources.build import build
from probcast.sources.config import parse_spec
from probcast.testing import archives as synthetic

BOX = (30.0, -10.0, 70.0, 30.0)


def _observations(path: Path, stations: int, inits: list[pd.Timestamp], leads: list[int]) -> None:
    rng = np.random.default_rng(0)
    lat = rng.uniform(35, 65, stations)
    lon = rng.uniform(-5, 25, stations)
    times = sorted({t + pd.Timedelta(hours=h) for t in inits for h in leads})
    n = len(times) * stations
    pd.DataFrame(
        {
            "station": np.tile([f"S{i:04d}" for i in range(stations)], len(times)),
            "time": np.repeat([t.isoformat() for t in times], stations),
            "latitude": np.tile(lat, len(times)),
            "longitude": np.tile(lon, len(times)),
            "altitude": 100.0,
            "t2m": 270.0 + rng.normal(size=n),
        }
    ).to_parquet(path, index=False)


def _spec(root: Path, inits: list[pd.Timestamp], leads: list[int]) -> dict:
    return {
        "nwp": {"source": "archive", "paths": str(root / "nwp" / "*.grib")},
        "truth": {"source": "table", "paths": [str(root / "obs.parquet")]},
        "variables": ["t2m", "ws10", "wdir10", "msl", "tp"],
        "period": {"start": inits[0].isoformat(), "end": inits[-1].isoformat()},
        "cycles": [0, 12],
        "lead_times": leads,
    }


def _maxrss(who: int) -> float:
    """Max RSS (MiB) of this process or of its largest finished child."""
    return resource.getrusage(who).ru_maxrss / 1024


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}", flush=True)


def _copy_cycle(template: Path, path: Path, init: pd.Timestamp) -> None:
    """``template``'s messages with their initialisation changed (no re-encoding)."""
    # Imported here, after pyproj (imported by probcast.testing): eccodes 2.50 imported
    # before pyproj corrupts the heap at interpreter exit on this machine.
    import eccodes

    with open(template, "rb") as src, open(path, "wb") as dst:
        while (h := eccodes.codes_grib_new_from_file(src)) is not None:
            try:
                eccodes.codes_set(h, "dataDate", int(init.strftime("%Y%m%d")))
                eccodes.codes_set(h, "dataTime", int(init.strftime("%H%M")))
                eccodes.codes_write(h, dst)
            finally:
                eccodes.codes_release(h)


def _limited_run(cmd: list[str], limit: int) -> tuple[int, float, int, bool]:
    """Run ``cmd``, killing it when its process tree's RSS exceeds ``limit`` bytes.

    Returns:
        ``(exit status, seconds, peak tree RSS in bytes, killed)``.
    """
    run = run_limited(cmd, limit, capture=True)
    out = (run.stdout or "").strip()
    if run.returncode == 0:
        print(out.splitlines()[0] if out else "", flush=True)
    return run.returncode, run.seconds, run.peak, run.killed


def large(gib: float, limit_gib: float, workers: int, step: float, stations: int) -> None:
    """The larger-than-memory build (see the module docstring)."""
    leads = list(range(0, 49, 6))
    with tempfile.TemporaryDirectory(prefix="probcast-build-bench-", dir="/tmp") as tmp:
        root = Path(tmp)
        (root / "nwp").mkdir()
        t0 = time.perf_counter()
        first = pd.Timestamp("2025-01-01", tz="UTC")
        template = synthetic.write_cycle(
            root / "nwp" / f"synth_{first:%Y%m%d%H}.grib", first, leads, box=BOX,
            step_deg=step, noise=1.0,
        )  # fmt: skip
        per_cycle = template.stat().st_size
        n = max(round(gib * 2**30 / per_cycle), 2)
        inits = [first + pd.Timedelta(hours=12 * i) for i in range(n)]
        for init in inits[1:]:
            _copy_cycle(template, root / "nwp" / f"synth_{init:%Y%m%d%H}.grib", init)
        size = sum(f.stat().st_size for f in (root / "nwp").iterdir())
        _observations(root / "obs.parquet", stations, inits, leads)
        t_write = time.perf_counter() - t0
        (root / "build.json").write_text(json.dumps(_spec(root, inits, leads)))
        print(f"archive written: {n} cycles, {size / 2**30:.2f} GiB in {t_write:.0f} s", flush=True)
        cmd = [
            sys.executable, "-c", "import sys; from probcast.cli import main; sys.exit(main())",
            "data", "build", "--config", str(root / "build.json"), "--out", str(root / "out"),
            "--workers", str(workers),
        ]  # fmt: skip
        code, elapsed, peak, killed = _limited_run(cmd, int(limit_gib * 2**30))
        status = "killed: over the memory limit" if killed else f"exit {code}"
        written = len(list((root / "out").glob("init_date=*/*.parquet")))
        table = root / "out" / "table.parquet"
        rows = [
            ("archive", f"{n} files, {size / 2**30:.2f} GiB ({step} deg grid)"),
            ("archive per cycle (MiB)", f"{per_cycle / 2**20:.1f}"),
            ("stations", str(stations)),
            ("workers", str(workers)),
            ("memory limit (GiB, RSS of the process tree)", f"{limit_gib:g}"),
            ("build status", status),
            ("cycles built", f"{written} of {n}"),
            ("table.parquet (MiB)", f"{table.stat().st_size / 2**20:.1f}" if table.exists() else "-"),  # noqa: E501
            ("archive write (s)", f"{t_write:.1f}"),
            ("build (s)", f"{elapsed:.1f}"),
            ("cycles per minute", f"{60 * written / elapsed:.1f}"),
            ("archive GiB per minute", f"{60 * size / 2**30 * written / n / elapsed:.2f}"),
            ("peak RSS, process tree (MiB, polled)", f"{peak / 2**20:.0f}"),
            ("max RSS, largest process (MiB)", f"{_maxrss(resource.RUSAGE_CHILDREN):.0f}"),
        ]  # fmt: skip
        _print(rows)
        shutil.rmtree(root / "nwp", ignore_errors=True)


def in_process(size: str, workers: int) -> None:
    """Build in this process (and, with ``workers > 1``, again on ``workers`` processes)."""
    days, step, stations = (10, 0.1, 1000) if size == "large" else (3, 0.25, 200)
    leads = list(range(0, 49, 6))
    inits = [
        pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(hours=12 * i) for i in range(2 * days)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = synthetic.write_archive(
            root / "nwp", inits, leads, box=BOX, step_deg=step, noise=1.0
        )
        size_b = sum(f.stat().st_size for f in files)
        _observations(root / "obs.parquet", stations, inits, leads)
        t_write = time.perf_counter() - t0
        spec = parse_spec(_spec(root, inits, leads))
        runs = [1] + ([workers] if workers > 1 else [])
        rows = [
            ("archive", f"{len(files)} files, {size_b / 2**20:.0f} MiB ({step} deg grid)"),
            ("stations", str(stations)),
            ("archive write (s)", f"{t_write:.1f}"),
        ]
        for n in runs:
            t0 = time.perf_counter()
            result = build(spec, root / f"out{n}", workers=n)
            elapsed = time.perf_counter() - t0
            label = "serial" if n == 1 else f"{n} workers"
            rows += [
                (f"{label}: cycles built", str(len(result.written))),
                (f"{label}: build (s)", f"{elapsed:.1f}"),
                (f"{label}: cycles per minute", f"{60 * len(result.written) / elapsed:.1f}"),
            ]
        if len(runs) == 2:
            a = pd.read_parquet(root / "out1" / "table.parquet")
            b = pd.read_parquet(root / f"out{workers}" / "table.parquet")
            rows.append(("parallel table == serial table", str(a.equals(b))))
    rows += [
        ("peak memory, this process (MiB, max RSS)", f"{_maxrss(resource.RUSAGE_SELF):.0f}"),
        ("peak memory, one worker (MiB, max RSS)", f"{_maxrss(resource.RUSAGE_CHILDREN):.0f}"),
    ]  # fmt: skip
    _print(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="a larger archive")
    parser.add_argument("--workers", type=int, default=1, help="also build on N processes")
    parser.add_argument("--archive-gib", type=float, help="larger-than-memory mode: archive GiB")
    parser.add_argument("--memory-limit-gib", type=float, default=2.0, help="RSS limit (GiB)")
    parser.add_argument("--step", type=float, default=0.1, help="grid spacing (--archive-gib)")
    parser.add_argument("--stations", type=int, default=1000, help="stations (--archive-gib)")
    args = parser.parse_args()
    if args.archive_gib:
        large(args.archive_gib, args.memory_limit_gib, args.workers, args.step, args.stations)
    else:
        in_process("large" if args.large else "default", args.workers)


if __name__ == "__main__":
    main()
