"""A synthetic GRIB1 archive with known values, for tests and ``benchmarks/build_throughput``.

Every field is constant in space, so station values are known exactly whatever the grid:
``2t`` = 270 + lead/10 K, ``10u`` = 3, ``10v`` = 4 m s-1 (speed 5, direction 216.87 deg),
``msl`` = 101000 Pa, ``tp`` = lead/2 mm since initialisation (ECMWF convention, in m),
``z`` = 100 m x g at step 0. One file per cycle, ``synth_YYYYMMDDHH.grib``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import eccodes
import numpy as np
import pandas as pd

from probcast import io
from probcast.sources.variables import G0

PARAMS = {"2t": 167, "10u": 165, "10v": 166, "msl": 151, "tp": 228, "z": 129}


def value(short_name: str, lead: float) -> float:
    """The constant value of ``short_name`` at ``lead`` hours (GRIB units)."""
    return {
        "2t": 270.0 + lead / 10.0,
        "10u": 3.0,
        "10v": 4.0,
        "msl": 101000.0,
        "tp": lead / 2.0 / 1000.0,
        "z": 100.0 * G0,
    }[short_name]


def write_cycle(
    path: str | os.PathLike[str],
    init: pd.Timestamp,
    leads: Sequence[float],
    *,
    box: tuple[float, float, float, float] = (30.0, -10.0, 70.0, 30.0),
    step_deg: float = 1.0,
    noise: float = 0.0,
) -> Path:
    """Write one cycle's GRIB1 file (atomically).

    Args:
        path: File to write.
        init: Initialisation time.
        leads: Steps (hours, whole).
        box: ``(south, west, north, east)`` of the regular lat-lon grid.
        step_deg: Grid spacing (degrees); smaller makes bigger messages (benchmarks).
        noise: Standard deviation of random noise added to every field (benchmarks).
    """
    south, west, north, east = box
    ni = round((east - west) / step_deg) + 1
    nj = round((north - south) / step_deg) + 1
    rng = np.random.default_rng(int(init.timestamp()))
    sample = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
    with io.atomic_path(path) as tmp, open(tmp, "wb") as f:
        for lead in leads:
            for name, pid in PARAMS.items():
                if name == "z" and lead != leads[0]:
                    continue
                h = eccodes.codes_clone(sample)
                for key, val in (
                    ("Ni", ni),
                    ("Nj", nj),
                    ("latitudeOfFirstGridPointInDegrees", north),
                    ("longitudeOfFirstGridPointInDegrees", west),
                    ("latitudeOfLastGridPointInDegrees", south),
                    ("longitudeOfLastGridPointInDegrees", east),
                    ("iDirectionIncrementInDegrees", step_deg),
                    ("jDirectionIncrementInDegrees", step_deg),
                    ("paramId", pid),
                    ("dataDate", int(init.strftime("%Y%m%d"))),
                    ("dataTime", int(init.strftime("%H%M"))),
                    ("stepRange", str(int(lead))),
                ):
                    eccodes.codes_set(h, key, val)
                field = np.full(ni * nj, value(name, float(lead)))
                if noise:
                    field = field + rng.normal(0.0, noise, field.size)
                eccodes.codes_set_values(h, field)
                eccodes.codes_write(h, f)
                eccodes.codes_release(h)
    eccodes.codes_release(sample)
    return Path(path)


def write_archive(
    folder: str | os.PathLike[str],
    inits: Sequence[pd.Timestamp],
    leads: Sequence[float],
    **kwargs: float | tuple[float, float, float, float],
) -> list[Path]:
    """Write one file per cycle into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_cycle(out / f"synth_{t:%Y%m%d%H}.grib", t, leads, **kwargs)  # type: ignore[arg-type]
        for t in inits
    ]
