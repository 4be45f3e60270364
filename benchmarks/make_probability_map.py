"""Map of an exceedance probability product: docs/img/probability_map.png.

Draws P(tp > threshold) of one reference time from a ``probabilities_tp`` product file
(written by ``probcast predict`` on a gridded input) with matplotlib ``pcolormesh`` over
longitude/latitude, and optionally the observed threshold contour from a canonical
gridded file holding ``obs_tp`` (e.g. the prepared ICP ``test.nc``). No data is
committed: only the PNG, a derived figure. Reproduce the README picture with::

    PROBCAST_DATA_MIRROR=../shared/data .venv/bin/python -c \\
        "from probcast.data.prepare import prepare; prepare('icp-wrf-precip-grid')"
    .venv/bin/probcast train --config=default --workdir=runs/gfsnam \\
        --config.data.path=gfsnam-precip-grid --config.model.embed_dim=0 \\
        --config.features.cyclic=False --config.model.hidden=64 --config.train.epochs=15 \\
        --config.tracking.backend=none
    .venv/bin/probcast predict --model=runs/gfsnam \\
        --input=$PROBCAST_CACHE/prepared/icp-wrf-precip-grid/test.nc \\
        --output=out/icp.nc --thresholds=tp:0.1,1,5,10
    .venv/bin/python benchmarks/make_probability_map.py \\
        --probabilities=out/icp_probabilities_tp.nc \\
        --truth=$PROBCAST_CACHE/prepared/icp-wrf-precip-grid/test.nc
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

NAME = "probability_of_precipitation_amount_above_threshold"


def _pick_case(prob: xr.DataArray, case: int) -> int:
    """The requested case, or (-1) the one with the largest area of P > 0.5."""
    if case >= 0:
        return case
    area = (prob > 0.5).sum([d for d in prob.dims if d != "forecast_reference_time"])
    return int(area.argmax(dim="forecast_reference_time"))


def make_map(
    probabilities: Path, out: Path, *, threshold: float, case: int, truth: Path | None
) -> Path:
    """Draw the map and write it as a PNG; return its path."""
    ds = xr.open_dataset(probabilities)
    prob = ds[NAME].sel(threshold=threshold, method="nearest").isel(forecast_period=0)
    i = _pick_case(prob, case)
    field = prob.isel(forecast_reference_time=i)
    lon, lat = ds["longitude"].values, ds["latitude"].values
    run = pd.Timestamp(ds["forecast_reference_time"].values[i])
    lead = pd.Timedelta(ds["forecast_period"].values[0])
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=100)
    mesh = ax.pcolormesh(
        lon, lat, np.ma.masked_invalid(field.values), cmap="YlGnBu", vmin=0, vmax=1, shading="auto"
    )
    if truth is not None:
        obs = xr.open_dataset(truth)["obs_tp"].isel(forecast_reference_time=i, forecast_period=0)
        ax.contour(lon, lat, obs.values, levels=[threshold], colors="crimson", linewidths=0.6)
        ax.plot([], [], color="crimson", lw=0.8, label=f"analysed {threshold:g} mm (Stage II)")
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    fig.colorbar(mesh, ax=ax, shrink=0.85, label=f"P(tp > {threshold:g} mm)")
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_aspect(1.0 / np.cos(np.deg2rad(float(np.nanmean(lat)))))
    ax.set_title(
        f"P(1-h precipitation > {threshold:g} mm), WRF run {run:%Y-%m-%d %H} UTC + "
        f"{lead / pd.Timedelta(hours=1):g} h\nprobcast tp model (trained on gfsnam-precip-grid) "
        f"on the ICP {ds.sizes['x']} x {ds.sizes['y']} grid",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    """Parse arguments and draw."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--probabilities", required=True, type=Path)
    p.add_argument("--out", default=Path("docs/img/probability_map.png"), type=Path)
    p.add_argument("--threshold", default=1.0, type=float)
    p.add_argument("--case", default=-1, type=int, help="reference time index; -1 = wettest")
    p.add_argument("--truth", default=None, type=Path, help="canonical file with obs_tp")
    args = p.parse_args()
    path = make_map(
        args.probabilities, args.out, threshold=args.threshold, case=args.case, truth=args.truth
    )
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
