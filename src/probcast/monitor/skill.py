"""Skill of the issued forecasts: join observations as they arrive, score every case once.

The forecasts issued are prediction files of ``probcast predict`` / ``probcast run`` (read
with :func:`probcast.products.table_files.read_predictions`; ``obs_*`` columns in them are
ignored: observations come only from the observation table). A case is a (variable,
station, issue time, lead time); it is scored when its observation appears in the
observation table (joined on station and valid time), with :func:`probcast.verify.pointwise
.case_scores`: the forecast's CRPS and PIT, the CRPS of the raw forecast ``fc_<var>`` (from
the forecast file or the cycle's input table) and of the EMOS reference, and the raw error
``fc - obs``. Scored cases go to the state (:class:`~probcast.monitor.state.MonitorState`);
a forecast file whose cases all have their observation (or a missing one) is not read again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.baselines.emos import EmosModel
from probcast.baselines.emos_fit import bucket
from probcast.dists import Predictive
from probcast.monitor.state import CASE_COLUMNS, MonitorState
from probcast.products import table as product_table
from probcast.products.table_files import read_predictions
from probcast.schema import FC_PREFIX, OBS_PREFIX, TABLE_SUFFIXES
from probcast.verify.pointwise import case_scores

log = logging.getLogger(__name__)
JOIN = ["station", "valid_time"]


@dataclass
class References:
    """What the forecasts are compared with.

    Attributes:
        inputs: Cycle input tables (``fc_<var>`` by station, init and lead) for the raw
            forecast when the forecast files lack it; None: only the files' own.
        emos: Fitted EMOS per variable (applied to the raw input); may be empty.
        emos_forecasts: An EMOS prediction table (keys + forecast columns) instead.
        emos_families: Families of ``emos_forecasts``.
    """

    inputs: pd.DataFrame | None = None
    emos: Mapping[str, EmosModel] | None = None
    emos_forecasts: pd.DataFrame | None = None
    emos_families: Mapping[str, str] | None = None


def forecast_files(paths: Sequence[str | Path]) -> list[Path]:
    """Prediction files named or found (one level) in the folders named, sorted."""
    out: list[Path] = []
    suffixes = (*TABLE_SUFFIXES, ".nc")
    for item in map(Path, paths):
        if item.is_dir():
            out += [p for p in sorted(item.iterdir()) if p.suffix.lower() in suffixes]
        elif item.exists():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such forecast file or folder")
    return out


def with_valid_time(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with normalised keys and a UTC ``valid_time`` (computed when absent)."""
    out = product_table.normalise_keys(frame)
    if "valid_time" in out.columns:
        out["valid_time"] = pd.to_datetime(out["valid_time"], utc=True)
    else:
        out["valid_time"] = out["init_time"] + pd.to_timedelta(out["lead_time"], unit="h")
    return out


def observation_table(frame: pd.DataFrame, source: str = "<observations>") -> pd.DataFrame:
    """One row per (station, valid time) with the ``obs_*`` columns (first finite value).

    Raises:
        ValueError: No ``obs_*`` column, or neither ``valid_time`` nor init + lead times.
    """
    obs_cols = [c for c in frame.columns if str(c).startswith(OBS_PREFIX)]
    if not obs_cols:
        raise ValueError(f"{source}: no observation columns (obs_<var>)")
    if "station" not in frame.columns:
        raise ValueError(f"{source}: missing column 'station'")
    df = frame.copy()
    df["station"] = df["station"].astype(str)
    if "valid_time" in df.columns:
        df["valid_time"] = pd.to_datetime(df["valid_time"], utc=True)
    elif {"init_time", "lead_time"} <= set(df.columns):
        df = with_valid_time(df)
    else:
        raise ValueError(f"{source}: needs 'valid_time' (or 'init_time' and 'lead_time')")
    return df.groupby(JOIN, sort=False)[obs_cols].first().reset_index()


def station_groups(stations: pd.Series, groups: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Group name of each station (``all`` without groups, ``other`` when unlisted)."""
    if not groups:
        return np.full(len(stations), "all", dtype=object)
    lookup = {s: g for g, members in groups.items() for s in members}
    return stations.astype(str).map(lookup).fillna("other").to_numpy(dtype=object)


def _raw(fc: pd.DataFrame, var: str, refs: References) -> np.ndarray | None:
    col = f"{FC_PREFIX}{var}"
    if col in fc.columns:
        return fc[col].to_numpy(dtype="float64")
    if refs.inputs is None or col not in refs.inputs.columns:
        return None
    keys = ["station", "init_time", "lead_time"]
    joined = fc[keys].merge(refs.inputs[[*keys, col]].drop_duplicates(keys), on=keys, how="left")
    return joined[col].to_numpy(dtype="float64")


def _emos_crps(
    fc: pd.DataFrame, var: str, raw: np.ndarray | None, refs: References, obs: np.ndarray
) -> np.ndarray:
    nan = np.full(len(fc), np.nan)
    if refs.emos_forecasts is not None and var in product_table.detect_variables(
        refs.emos_forecasts.columns
    ):
        keys = ["station", "init_time", "lead_time"]
        joined = fc[keys].merge(refs.emos_forecasts, on=keys, how="left")
        family = (refs.emos_families or {}).get(var)
        pred = product_table.to_predictive(joined, var, family=family, source="EMOS forecasts")
        return case_scores(pred, obs)["crps"]
    model = (refs.emos or {}).get(var)
    if model is None or raw is None:
        return nan
    table = fc[["station", "lead_time"]].assign(**{f"{FC_PREFIX}{var}": raw})
    pred = Predictive.from_params(var, model.family, model.predict(table))
    return case_scores(pred, obs)["crps"]


def _issued(frame: pd.DataFrame, var: str) -> bool:
    """Whether ``frame`` holds a probabilistic forecast of ``var`` (not only ``fc_<var>``)."""
    cs = product_table.parse_columns(frame.columns, var)
    return bool(cs.members or cs.quantiles or cs.other)


def score_table(
    forecasts: pd.DataFrame,
    families: Mapping[str, str],
    obs: pd.DataFrame,
    refs: References,
    groups: Mapping[str, Sequence[str]],
    source: str = "<forecasts>",
) -> tuple[pd.DataFrame, int]:
    """Score the cases of one forecast table whose observation has arrived.

    Returns:
        ``(cases, pending)``: the scored cases (columns of the state) and the number of
        cases still waiting for their observation.
    """
    fc = with_valid_time(
        forecasts.drop(columns=[c for c in forecasts if str(c).startswith(OBS_PREFIX)])
    )
    variables = [v for v in product_table.detect_variables(fc.columns) if _issued(fc, v)]
    joined = fc.merge(obs, on=JOIN, how="left", indicator=True)
    arrived = (joined["_merge"] == "both").to_numpy()
    parts, pending = [], 0
    for var in variables:
        ocol = f"{OBS_PREFIX}{var}"
        if ocol not in joined.columns:
            log.warning("%s: no observations of %r in the observation table", source, var)
            continue
        pending += int((~arrived).sum())
        rows = joined.loc[arrived & joined[ocol].notna().to_numpy()].reset_index(drop=True)
        if rows.empty:
            continue
        n = len(rows)
        # pad to a bucketed size (repeating the first row): the JAX kernels of the scores
        # compile once per size, not once per cycle's number of cases
        rows = pd.concat([rows, rows.iloc[[0] * (bucket(n, 256) - n)]], ignore_index=True)
        y = rows[ocol].to_numpy(dtype="float64")
        pred = product_table.to_predictive(rows, var, family=families.get(var), source=source)
        scores = case_scores(pred, y)
        raw = _raw(rows, var, refs)
        raw_crps = (
            case_scores(Predictive.from_point(var, raw), y)["crps"]
            if raw is not None
            else np.full(len(rows), np.nan)
        )
        cases = rows[["station", "init_time", "lead_time", "valid_time"]].assign(
            variable=var,
            station_group=station_groups(rows["station"], groups),
            obs=y,
            crps=scores["crps"],
            crps_raw=raw_crps,
            crps_emos=_emos_crps(rows, var, raw, refs, y),
            pit=scores["pit"],
            err_raw=(raw - y) if raw is not None else np.nan,
        )
        parts.append(cases.loc[: n - 1, list(CASE_COLUMNS)])
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CASE_COLUMNS))
    return out, pending


def update(
    state: MonitorState,
    paths: Sequence[Path],
    obs: pd.DataFrame,
    refs: References,
    groups: Mapping[str, Sequence[str]],
) -> dict[str, int]:
    """Score the new cases of every forecast file not yet fully scored.

    Returns:
        Counts: ``files`` read, ``skipped`` (already complete), ``scored``, ``pending``.
    """
    counts = {"files": 0, "skipped": 0, "scored": 0, "pending": 0}
    for path in paths:
        if state.file_done(path):
            counts["skipped"] += 1
            continue
        table, families = read_predictions(path)
        cases, pending = score_table(table, families, obs, refs, groups, source=str(path))
        counts["files"] += 1
        counts["scored"] += state.add_cases(cases)
        counts["pending"] += pending
        if pending == 0:
            state.mark_done(path)
    return counts
