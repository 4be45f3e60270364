"""Station predictions: a trained model and a station table -> a prediction table.

Output columns: the key columns (``station``, ``init_time``, ``lead_time``, ``valid_time``)
and, per target ``<var>``: members ``<var>_m000 ...``, quantiles ``<var>_q0.05 ...``,
exceedance probabilities ``<var>_p_gt_<thr> ...`` and, for parametric heads, the
distribution parameters ``<var>_<param>`` (e.g. ``tp_loc``, ``tp_scale``; the mean over seed
networks when there are several).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.model.artefact import TrainedModel

log = logging.getLogger(__name__)

KEYS = ("station", "init_time", "lead_time", "valid_time")


def format_level(q: float) -> str:
    """Column suffix of a quantile level or threshold: shortest round-trip repr (0.05, 1)."""
    return f"{float(q):g}"


def predict_table(
    model: TrainedModel,
    table: pd.DataFrame,
    *,
    members: int = 0,
    quantiles: Sequence[float] = (),
    thresholds: Mapping[str, Sequence[float]] | None = None,
    seed: int = 0,
    params: bool = True,
) -> pd.DataFrame:
    """Predict every target of ``model`` for each row of ``table``.

    Args:
        model: Loaded model (:func:`probcast.model.artefact.load`).
        table: Canonical station table with the training predictors (obs columns are
            ignored; they are copied to the output when present).
        members: Number of coherent members per row (0 for none).
        quantiles: Quantile levels in (0, 1).
        thresholds: Per target, thresholds of the exceedance probabilities.
        seed: Seed of the member draws.
        params: Include the distribution parameters of parametric heads.

    Returns:
        One row per input row, in input order.
    """
    out = table[[c for c in KEYS if c in table.columns]].copy()
    cols: dict[str, np.ndarray] = {}
    if params:
        for var, ps in model.params(table).items():
            cols.update({f"{var}_{name}": v for name, v in ps.items()})
    if members:
        for var, m in model.sample(table, members, seed).items():
            cols.update({f"{var}_m{j:03d}": m[:, j] for j in range(members)})
    if quantiles:
        for var, q in model.quantiles(table, quantiles).items():
            cols.update({f"{var}_q{format_level(lv)}": q[:, j] for j, lv in enumerate(quantiles)})
    for var, p in model.exceedance(table, thresholds or {}).items() if thresholds else []:
        for j, t in enumerate(thresholds[var]):  # type: ignore[index]
            cols[f"{var}_p_gt_{format_level(t)}"] = p[:, j]
    obs = {c: table[c].to_numpy() for c in table.columns if c.startswith("obs_")}
    frame = pd.DataFrame({**cols, **obs}, index=out.index)
    return pd.concat([out, frame], axis=1)


def parse_thresholds(text: str) -> dict[str, list[float]]:
    """Parse ``"tp:0.1,1,5;t2m:273.15"`` (``;`` or ``/`` between variables)."""
    out: dict[str, list[float]] = {}
    if not text.strip():
        return out
    for part in text.replace("/", ";").split(";"):
        var, sep, values = part.partition(":")
        if not sep or not values.strip():
            raise ValueError(f"thresholds must look like 'tp:0.1,1,5;t2m:273.15', got {text!r}")
        out[var.strip()] = [float(v) for v in values.split(",") if v.strip()]
    return out


def parse_levels(text: str) -> list[float]:
    """Parse ``"0.05,0.5,0.95"`` into quantile levels in (0, 1)."""
    levels = [float(v) for v in text.split(",") if v.strip()]
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantile levels must lie in (0, 1), got {bad}")
    return levels


def write_predictions(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write predictions atomically; the format follows the extension.

    ``.csv`` / ``.parquet`` via :func:`probcast.ingest.tables.write_table`; ``.nc`` as a
    NetCDF file with dimensions ``(station, init_time, lead_time)`` when those keys are
    unique, else one ``row`` dimension.
    """
    p = Path(path)
    if p.suffix.lower() == ".nc":
        return _write_netcdf(frame, p)
    from probcast.ingest.tables import write_table

    return write_table(frame, p)


def _write_netcdf(frame: pd.DataFrame, path: Path) -> Path:
    import xarray as xr

    from probcast.ingest.tables import atomic_path

    keys = [c for c in ("station", "init_time", "lead_time") if c in frame.columns]
    data = frame.copy()
    for col in ("init_time", "valid_time"):
        if col in data:
            data[col] = pd.to_datetime(data[col], utc=True).dt.tz_convert(None)
    if len(keys) == 3 and not data.duplicated(keys).any():
        ds = xr.Dataset.from_dataframe(data.set_index(keys))
    else:
        ds = xr.Dataset.from_dataframe(data.rename_axis("row"))
    if "station" in ds.coords:
        ds["station"] = ds["station"].astype(str)
    ds.attrs.update(
        title="probcast station predictions",
        Conventions="CF-1.10",
        source="probcast predict",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        ds.to_netcdf(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
