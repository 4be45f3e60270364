"""Build throughput of ``probcast data build`` over a synthetic GRIB archive.

Prints cycles per minute and peak memory (max RSS of this process) for a build of a
synthetic GRIB1 archive (``probcast.testing.archives``, noisy fields on a regular grid)
against a synthetic observation table. The default is small (a couple of minutes on a
laptop); ``--large`` writes a bigger archive (finer grid, more cycles and stations).

    python benchmarks/build_throughput.py            # default size
    python benchmarks/build_throughput.py --large    # larger archive
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.sources.build import build
from probcast.sources.config import parse_spec
from probcast.testing import archives as synthetic


def _observations(path: Path, stations: int, inits: list[pd.Timestamp], leads: list[int]) -> None:
    rng = np.random.default_rng(0)
    lat = rng.uniform(35, 65, stations)
    lon = rng.uniform(-5, 25, stations)
    times = sorted({t + pd.Timedelta(hours=h) for t in inits for h in leads})
    rows = [
        (f"S{i:04d}", t.isoformat(), lat[i], lon[i], 100.0, 270.0 + rng.normal())
        for t in times
        for i in range(stations)
    ]
    pd.DataFrame(
        rows, columns=["station", "time", "latitude", "longitude", "altitude", "t2m"]
    ).to_parquet(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="a larger archive")
    args = parser.parse_args()
    days, step, stations = (10, 0.1, 1000) if args.large else (3, 0.25, 200)
    leads = list(range(0, 49, 6))
    inits = [
        pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(hours=12 * i) for i in range(2 * days)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = synthetic.write_archive(
            root / "nwp", inits, leads, box=(30.0, -10.0, 70.0, 30.0), step_deg=step, noise=1.0
        )
        size = sum(f.stat().st_size for f in files)
        _observations(root / "obs.parquet", stations, inits, leads)
        t_write = time.perf_counter() - t0
        spec = parse_spec(
            {
                "nwp": {"source": "archive", "paths": str(root / "nwp" / "*.grib")},
                "truth": {"source": "table", "paths": [str(root / "obs.parquet")]},
                "variables": ["t2m", "ws10", "wdir10", "msl", "tp"],
                "period": {"start": str(inits[0].date()), "end": str(inits[-1].date())},
                "cycles": [0, 12],
                "lead_times": leads,
            }
        )
        t0 = time.perf_counter()
        result = build(spec, root / "out")
        elapsed = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("archive", f"{len(files)} files, {size / 2**20:.0f} MiB ({step} deg grid)"),
        ("stations", str(stations)),
        ("cycles built", str(len(result.written))),
        ("rows", str(result.rows)),
        ("archive write (s)", f"{t_write:.1f}"),
        ("build (s)", f"{elapsed:.1f}"),
        ("cycles per minute", f"{60 * len(result.written) / elapsed:.1f}"),
        ("peak memory (MiB, max RSS)", f"{peak_mib:.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
