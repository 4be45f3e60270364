"""Benchmark: gridded prediction of a whole model run into CF products.

Runs one gridded :class:`probcast.PredictRequest` through :func:`probcast.run` once in this
process and reports its wall time and the process's peak resident memory
(``resource.getrusage``), plus the size of every product file. Example (the ICP WRF
601 x 501 4-km grid, a tp model trained on ``gfsnam-precip-grid``)::

    PROBCAST_DATA_MIRROR=../shared/data .venv/bin/python -c \\
        "from probcast.data.prepare import prepare; print(prepare('icp-wrf-precip-grid').paths)"
    .venv/bin/probcast train --config=default --workdir=runs/gfsnam \\
        --config.data.path=gfsnam-precip-grid --config.model.embed_dim=0 \\
        --config.features.cyclic=False --config.model.hidden=64 --config.train.epochs=15
    .venv/bin/python benchmarks/grid_predict.py --model=runs/gfsnam \\
        --input=$PROBCAST_CACHE/prepared/icp-wrf-precip-grid/test.nc --output=out/icp.nc
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    """Parse arguments, predict, print one JSON record."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--percentiles", default="5,25,50,75,95")
    p.add_argument("--thresholds", default="0.1,1,5,10")
    p.add_argument("--members", type=int, default=0)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--scheduler", default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("probcast").setLevel(logging.INFO)

    import probcast

    targets = probcast.load_model(args.model).targets
    thresholds = {v: [float(t) for t in args.thresholds.split(",")] for v in targets}
    start = time.perf_counter()
    request = probcast.PredictRequest(
        model=args.model,
        input=args.input,
        output=args.output,
        members=args.members,
        percentiles=tuple(float(v) for v in args.percentiles.split(",")),
        thresholds=thresholds,
        scheduler=args.scheduler,
        tile=args.tile,
    )
    paths = probcast.run(request).paths
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record = {
        "input": args.input,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak),
        "files_mb": {k: round(_size_mb(v), 2) for k, v in paths.items()},
    }
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
