"""The training statistics input drift is measured against: the model's ``domain.json``.

A trained model's work directory holds ``domain.json`` (written at training)::

    {"version": 1, "rows": N, "lead_hours": {"min": a, "max": b}, "stations": [...],
     "features": {"fc_t2m": {"levels": [0, 0.001, ..., 1], "values": [17 floats]}, ...}}

with the marginal quantiles of every raw input column (``fc_*`` and the statics) on the
training rows. The monitor treats it as a plain dict: :func:`load_reference` reads it from a
work directory or a JSON file, or builds the same dict from a training table with
:func:`reference_from_table` (models trained before ``domain.json`` existed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast import recent
from probcast.model.domain import DOMAIN_FILE, DOMAIN_VERSION, LEVELS
from probcast.schema import FC_PREFIX, STATIC_COLUMNS, TABLE_SUFFIXES

VERSION = DOMAIN_VERSION


class ReferenceError(ValueError):
    """A reference (``domain.json`` or table) that cannot be used; the message says where."""


def default_columns(columns: Sequence[str] | pd.Index) -> list[str]:
    """The raw input columns of a table: ``fc_*`` and the statics, in table order."""
    return [c for c in map(str, columns) if c.startswith(FC_PREFIX) or c in STATIC_COLUMNS]


def reference_from_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> dict:
    """The ``domain.json`` dict of a training table.

    Args:
        frame: Canonical station table (the training rows).
        columns: Columns to describe; default :func:`default_columns`.

    Returns:
        ``{"version", "rows", "lead_hours", "stations", "features"}`` as in ``domain.json``;
        a column with no finite value is left out.
    """
    cols = list(columns) if columns is not None else default_columns(frame.columns)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ReferenceError(f"reference table lacks column(s) {missing}")
    features: dict[str, dict[str, list[float]]] = {}
    for col in cols:
        x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")
        x = x[np.isfinite(x)]
        if x.size:
            values = np.quantile(x, LEVELS)
            features[col] = {"levels": list(LEVELS), "values": [float(v) for v in values]}
    lead = pd.to_numeric(frame.get("lead_time", pd.Series(dtype=float)), errors="coerce")
    lead_hours = (
        {"min": float(lead.min()), "max": float(lead.max())} if lead.notna().any() else None
    )
    stations = sorted(map(str, frame["station"].unique())) if "station" in frame else []
    return {
        "version": VERSION,
        "rows": len(frame),
        "lead_hours": lead_hours,
        "stations": stations,
        "features": features,
    }


def check_reference(ref: Any, source: str = "<reference>") -> dict:
    """Check the structure of a reference dict; return it.

    Raises:
        ReferenceError: Wrong version, no features, or a feature whose levels are not
            ascending in [0, 1] or whose values are not as many, finite and ascending.
    """
    if not isinstance(ref, Mapping):
        raise ReferenceError(f"{source}: expected a JSON object, got {type(ref).__name__}")
    if ref.get("version") != VERSION:
        raise ReferenceError(f"{source}: version {ref.get('version')!r}; expected {VERSION}")
    feats = ref.get("features")
    if not isinstance(feats, Mapping) or not feats:
        raise ReferenceError(f"{source}: 'features' must be a non-empty object")
    for name, spec in feats.items():
        where = f"{source}: features.{name}"
        if not isinstance(spec, Mapping) or "levels" not in spec or "values" not in spec:
            raise ReferenceError(f"{where}: expected an object with 'levels' and 'values'")
        lv = np.asarray(spec["levels"], dtype="float64")
        vals = np.asarray(spec["values"], dtype="float64")
        if lv.ndim != 1 or lv.size < 3 or lv[0] != 0 or lv[-1] != 1 or np.any(np.diff(lv) <= 0):
            raise ReferenceError(f"{where}.levels: expected ascending levels from 0 to 1")
        if vals.shape != lv.shape or not np.isfinite(vals).all() or np.any(np.diff(vals) < 0):
            raise ReferenceError(
                f"{where}.values: expected {lv.size} finite ascending values, got {vals.size}"
            )
    return dict(ref)


def load_reference(path: str | Path) -> dict:
    """Read a reference: a model work directory, a ``domain.json`` file or a training table.

    A work directory without ``domain.json`` (a model trained before it existed) is an
    error naming the way out: pass the training table instead.

    Raises:
        FileNotFoundError: Nothing at ``path``.
        ReferenceError: An unusable file (the message names it and the field).
    """
    p = Path(path)
    if p.is_dir():
        if not (p / DOMAIN_FILE).exists():
            raise ReferenceError(
                f"{p}: no {DOMAIN_FILE} in the model directory (trained before it existed?); "
                "pass the training table as the reference instead"
            )
        p = p / DOMAIN_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such reference (model directory, JSON or table)")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise ReferenceError(f"{p}: not valid JSON ({err})") from None
        return _raw_inputs(check_reference(data, str(p)))
    if p.suffix.lower() in TABLE_SUFFIXES:
        from probcast.monitor.tables import read_tables

        return check_reference(reference_from_table(read_tables([p])), str(p))
    raise ReferenceError(f"{p}: expected a model directory, a .json file or a station table")


def _raw_inputs(ref: dict) -> dict:
    """``ref`` without the recent-error predictors (``err_<var>``) of a model's domain.

    Prediction computes them from a template table; a cycle's input does not hold them, so
    they would always be reported missing (ProbcastInputFeatureMissing firing for ever).
    """
    kept = {k: v for k, v in ref["features"].items() if not str(k).startswith(recent.PREFIX)}
    return {**ref, "features": kept} if kept else ref


def quantile_knots(spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct reference values with the CDF just below and at each (ties are point masses).

    Returns:
        ``(values, cdf_left, cdf_right)``: ascending distinct values ``u``, ``F(u-)`` (the
        lowest level at ``u``) and ``F(u)`` (the highest).
    """
    lv = np.asarray(spec["levels"], dtype="float64")
    vals = np.asarray(spec["values"], dtype="float64")
    u, first = np.unique(vals, return_index=True)
    last = np.searchsorted(vals, u, side="right") - 1
    return u, lv[first], lv[last]
