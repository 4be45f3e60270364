"""Skill of the issued forecasts: join observations as they arrive, score every case once.

The forecasts issued are prediction files of ``probcast predict`` / ``probcast run`` (read
with :func:`probcast.monitor.tables.read_forecasts`: in canonical units whatever
``--units`` they were written in; ``obs_*`` columns in them are ignored: observations come
only from the observation table). A case is a (variable, station, issue time, lead time);
it is scored when its observation appears in the observation table (joined on station and
valid time; a NaN observation has not arrived), with :func:`probcast.verify.pointwise
.case_scores`: the forecast's CRPS and PIT, the CRPS of the raw forecast ``fc_<var>`` (from
the forecast file or the cycle's input table) and of the EMOS reference, and the raw error
``fc - obs``. Scored cases go to the state (:class:`~probcast.monitor.state.MonitorState`).
A forecast file is marked done (not read again) when every case has its observation; a
case still without one ``obs_grace_days`` after its valid time (counted back from the
newest observation in the table) is given up, with a logged count, so that a station that
never reports does not keep its files open for ever.
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
from probcast.monitor.config import SkillConfig
from probcast.monitor.state import CASE_COLUMNS, MonitorState
from probcast.monitor.tables import read_forecasts
from probcast.products import table as product_table
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


FORECAST_SUFFIXES = (*TABLE_SUFFIXES, ".nc")
"""Suffixes of the prediction files searched for in folders."""


def _found_in(folder: Path) -> list[Path]:
    """Prediction files anywhere below ``folder`` (hidden names and temporaries skipped)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in FORECAST_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )


def forecast_files(paths: Sequence[str | Path]) -> list[Path]:
    """Prediction files named, or found at any depth in the folders named, sorted.

    A publish layout such as ``{cycle:%Y%m%d%H}/{name}`` puts each cycle's files in a
    folder of its own: ``published/`` finds them all.

    Raises:
        FileNotFoundError: A path that does not exist.
        ValueError: No prediction file at all (the message names the paths searched).
    """
    out: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            out += _found_in(item)
        elif item.exists():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such forecast file or folder")
    if not out:
        names = ", ".join(map(str, paths))
        raise ValueError(
            f"{names}: no forecast file found (searched folders at any depth for "
            f"{', '.join(FORECAST_SUFFIXES)} files)"
        )
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
) -> tuple[pd.DataFrame, pd.Series]:
    """Score the cases of one forecast table whose observation has arrived.

    A case waits while the observation table has no row for its station and valid time,
    a NaN there, or no ``obs_<var>`` column at all.

    Returns:
        ``(cases, waiting)``: the scored cases (columns of the state) and the valid time of
        every case still waiting for its observation (one entry per case).
    """
    fc = with_valid_time(
        forecasts.drop(columns=[c for c in forecasts if str(c).startswith(OBS_PREFIX)])
    )
    variables = [v for v in product_table.detect_variables(fc.columns) if _issued(fc, v)]
    joined = fc.merge(obs, on=JOIN, how="left")
    parts, waiting = [], []
    for var in variables:
        ocol = f"{OBS_PREFIX}{var}"
        if ocol not in joined.columns:
            log.warning("%s: no observations of %r in the observation table", source, var)
            waiting.append(joined["valid_time"])
            continue
        observed = np.isfinite(joined[ocol].to_numpy(dtype="float64"))
        waiting.append(joined.loc[~observed, "valid_time"])
        rows = joined.loc[observed].reset_index(drop=True)
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
    times = pd.concat(waiting, ignore_index=True) if waiting else pd.Series([], dtype=object)
    return out, pd.to_datetime(times, utc=True)


def observed_until(obs: pd.DataFrame) -> pd.Timestamp | None:
    """The newest valid time with a finite observation (None: no observation at all)."""
    cols = [c for c in obs.columns if str(c).startswith(OBS_PREFIX)]
    if not cols or obs.empty:
        return None
    values = obs[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    times = obs.loc[np.isfinite(values).any(axis=1), "valid_time"]
    return pd.Timestamp(times.max()) if len(times) else None


def update(
    state: MonitorState,
    paths: Sequence[Path],
    obs: pd.DataFrame,
    refs: References,
    cfg: SkillConfig,
) -> dict[str, int]:
    """Score the new cases of every forecast file not yet fully scored.

    A file is marked done when none of its cases waits for an observation any more: each
    has one, or its valid time is more than ``cfg.obs_grace_days`` before the newest
    observation of ``obs`` (given up: logged with its count, never scored).

    Returns:
        Counts: ``files`` read, ``skipped`` (already complete), ``scored``, ``pending``
        (cases waiting), ``unobserved`` (cases given up by the files marked done now).
    """
    counts = {"files": 0, "skipped": 0, "scored": 0, "pending": 0, "unobserved": 0}
    newest = observed_until(obs)
    cutoff = None if newest is None else newest - pd.Timedelta(days=cfg.obs_grace_days)
    for path in paths:
        if state.file_done(path):
            counts["skipped"] += 1
            continue
        table, families = read_forecasts(path)
        cases, waiting = score_table(
            table, families, obs, refs, cfg.station_groups, source=str(path)
        )
        given_up = int((waiting < cutoff).sum()) if cutoff is not None else 0
        counts["files"] += 1
        counts["scored"] += state.add_cases(cases)
        counts["pending"] += len(waiting) - given_up
        if len(waiting) == given_up:
            if given_up:
                log.warning(
                    "%s: %d case(s) never observed (valid more than %g days before the newest "
                    "observation, %s); the file is done without them",
                    path,
                    given_up,
                    cfg.obs_grace_days,
                    f"{newest:%Y-%m-%dT%H:%MZ}",
                )
                counts["unobserved"] += given_up
            state.mark_done(path)
    return counts
