"""``verif-norway-precip``: 6-h precipitation at 147 Norwegian stations (verif NetCDF files).

Layout (verif 1.0): ``obs`` and ``fcst`` with dims ``(time, leadtime, location)``; ``time`` is
the run's initialisation in unix seconds, ``leadtime`` in hours, ``location`` the station id
with ``lat``/``lon``/``altitude`` per location. Values are in mm (6-h accumulation).

Known problems and repairs:
- Missing values are stored as the NetCDF default fill value 9.96921e36 without a
  ``_FillValue`` attribute, so no reader masks them: values above 1e30 are set to NaN.
- ``cal.nc`` declares ``units = "mmoC"`` (a typo); it holds the same 6-h precipitation in mm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from probcast.data.prepare import Canonical, register
from probcast.schema import to_canonical_units
from probcast.validate import validate_station_table, validation_report

FILL_LIMIT = 1e30
"""Values above this are the undeclared NetCDF fill value 9.96921e36 (missing)."""

_RENAME = {"time": "init_time", "leadtime": "lead_time", "location": "station", "x": "quantiles"}
_STATIC = {"lat": "latitude", "lon": "longitude", "altitude": "altitude"}


def _masked(da: xr.DataArray) -> xr.DataArray:
    values = da.values.astype("float64")
    values[~(np.abs(values) < FILL_LIMIT)] = np.nan
    return da.copy(data=values)


def read_verif_reference(path: str | Path) -> xr.Dataset:
    """Read a verif NetCDF file (``raw.nc`` or ``cal.nc``) with decoded times and masks.

    Both files hold a probabilistic forecast of 6-h precipitation: ``raw.nc`` the raw
    ensemble's, ``cal.nc`` the one after an existing calibration method. They are the
    reference to beat, e.g. with Brier scores ``(1 - cdf - 1[obs > threshold])**2``.

    Returned dataset (the undeclared fill value 9.96921e36 masked to NaN):

    - dims ``init_time`` (datetime64[ns], UTC without tz), ``lead_time`` (float hours),
      ``station`` (str id as in the canonical table), ``threshold`` (mm), ``quantile``
      (probability level);
    - coords ``latitude``, ``longitude`` (degrees), ``altitude`` (m) along ``station``;
    - ``obs`` (init_time, lead_time, station): observed 6-h precipitation (mm);
    - ``fcst`` (init_time, lead_time, station): the file's deterministic forecast (mm); in
      ``cal.nc`` this is the calibrated method's point forecast, not the raw one;
    - ``cdf`` (init_time, lead_time, station, threshold): P(precip <= threshold);
    - ``quantiles`` (init_time, lead_time, station, quantile): forecast quantiles (mm);
    - ``pit`` (init_time, lead_time, station): PIT value of ``obs`` under the forecast.

    Attributes: ``units`` ("mm"), ``source_units`` (as written in the file), ``source``.

    Args:
        path: Path of ``raw.nc`` or ``cal.nc``.

    Returns:
        The dataset described above, loaded in memory.
    """
    with xr.open_dataset(path, decode_times=False, mask_and_scale=False) as raw:
        ds = raw.load()
    out = ds.rename(_RENAME).rename(_STATIC)
    for name in ("obs", "fcst", "cdf", "quantiles", "pit"):
        out[name] = _masked(out[name])
    out = out.set_coords(list(_STATIC.values()))
    for name in _STATIC.values():
        out[name] = _masked(out[name])
    init = pd.to_datetime(out["init_time"].values.astype("int64"), unit="s")
    out = out.assign_coords(
        init_time=init.astype("datetime64[ns]"),
        lead_time=out["lead_time"].values.astype("float64"),
        station=out["station"].values.astype(str),
    )
    out.attrs = {
        "units": "mm",
        "source_units": str(ds.attrs.get("units", "")),
        "long_name": str(ds.attrs.get("long_name", "")),
        "source": str(path),
    }
    return out


def _table(ds: xr.Dataset) -> pd.DataFrame:
    pairs = ds[["obs", "fcst"]].drop_dims(["threshold", "quantile"], errors="ignore")
    df = pairs.to_dataframe().reset_index()
    df["init_time"] = df["init_time"].dt.tz_localize("UTC")
    df["fc_tp"] = to_canonical_units(df.pop("fcst").to_numpy(), "mm", "tp", source="raw.nc")
    df["obs_tp"] = to_canonical_units(df.pop("obs").to_numpy(), "mm", "tp", source="raw.nc")
    cols = ["station", "init_time", "lead_time", *_STATIC.values(), "fc_tp", "obs_tp"]
    return df[cols]


def _consistency(raw: xr.Dataset, cal: xr.Dataset) -> list[str]:
    same_obs = np.array_equal(raw["obs"].values, cal["obs"].values, equal_nan=True)
    lines = [f"cal.nc obs identical to raw.nc obs: {same_obs}"]
    if cal.attrs["source_units"] != "mm":
        lines.append(
            f"cal.nc declares units {cal.attrs['source_units']!r} (typo); read as mm like raw.nc"
        )
    return lines


@register("verif-norway-precip")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert ``raw.nc`` (and check ``cal.nc``) to the canonical station table.

    Args:
        files: Fetched files keyed by ``raw.nc`` and ``cal.nc``.

    Returns:
        Station table with ``fc_tp``/``obs_tp`` (kg m-2 per 6 h), target ``tp``.
    """
    raw = read_verif_reference(files["raw.nc"])
    cal = read_verif_reference(files["cal.nc"])
    table = validate_station_table(_table(raw), source="raw.nc")
    report = [f"raw.nc: {line}" for line in validation_report(table)]
    report += _consistency(raw, cal)
    missing = table["fc_tp"].isna()
    both = int((missing & table["obs_tp"].isna()).sum())
    report.append(
        f"masked the undeclared NetCDF fill value 9.96921e36; dropped {int(missing.sum())} of "
        f"{len(table)} rows ({missing.mean():.1%}) without a forecast ({both} of them also "
        f"without an observation)"
    )
    table = validate_station_table(table[~missing].reset_index(drop=True), source="raw.nc")
    return Canonical(data=table, targets=["tp"], report=report)
