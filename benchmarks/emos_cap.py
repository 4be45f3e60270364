"""Local EMOS on a national-size network: all training rows vs the ``train.emos_max_rows`` cap.

Usage::

    .venv/bin/python benchmarks/emos_cap.py [--stations 400] [--days 200] [--caps 0,1000000,300000]

A synthetic network (:func:`probcast.testing.stations.network_table`, 40 lead times), split
in time: the first 90 % of the runs fit local EMOS (one coefficient set per station, fitted
jointly), the last 10 % score it. For each cap (0: all rows) prints the fitting rows, the fit
time and the test CRPS, for t2m (normal) and tp (censored logistic).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from probcast.baselines.emos import fit_emos
from probcast.testing.stations import network_table
from probcast.train.blend import emos_rows
from probcast.train.calibrate import mean_crps

FAMILIES = {"t2m": "normal", "tp": "censored_logistic"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=400)
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--caps", default="0,1000000,300000")
    args = parser.parse_args(argv)
    table = network_table(args.stations, args.days, targets=tuple(FAMILIES))
    cut = np.sort(table["init_time"].unique())[int(args.days * 0.9)]
    fit, test = table[table["init_time"] < cut], table[table["init_time"] >= cut]
    print(f"fit rows {len(fit):,}, test rows {len(test):,}, stations {args.stations}")
    print(f"{'var':<5} {'cap':>10} {'rows':>10} {'fit s':>7} {'test CRPS':>10}")
    for var, family in FAMILIES.items():
        y = test[f"obs_{var}"].to_numpy(dtype="float64")
        for cap in (int(c) for c in args.caps.split(",")):
            start = time.perf_counter()
            rows = emos_rows(fit, cap)
            model = fit_emos(rows, var, family=family, by_station=True)
            seconds = time.perf_counter() - start
            crps = mean_crps(family, model.predict(test), y)
            print(f"{var:<5} {cap:>10} {len(rows):>10} {seconds:>7.1f} {crps:>10.5f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
