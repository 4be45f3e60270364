"""The training domain of a model: lead times, stations and input quantiles (``domain.json``).

Training records, on its training rows, what the model has seen: the range of lead times,
the stations and, for every raw input column the network reads (``fc_*``, ``stat_*``,
latitude/longitude/altitude; the lead time has its own range), the values at fixed
quantile levels :data:`LEVELS`. Prediction compares each row with it
(:mod:`probcast.model.applicability`) and a drift monitor can compare a whole period with
it. The file format (version 1) is fixed::

    {"version": 1, "rows": N, "lead_hours": {"min": a, "max": b}, "stations": [ids...],
     "features": {"<column>": {"levels": [0, 0.001, ..., 1], "values": [...17 floats...]}},
     "valid_until": "2021-01-31T00:00:00Z", "periods": {"tp": 6.0}}

``valid_until`` (optional: absent in files written before it was recorded) is the latest
valid time of the training rows: the newest observation the model learned from, so a later
evaluation (the retraining gate) can score it only on what it has not seen. ``periods``
(optional: absent when the training data recorded none) are the hours that ``tp``, ``tmax``
and ``tmin`` cover (:mod:`probcast.periods`): prediction refuses input of another period and
the products state it.

Models trained before this file existed have none: :func:`load_domain` returns ``None``
(one info line) and the checks are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast import periods
from probcast.io import write_json

log = logging.getLogger(__name__)

DOMAIN_FILE = "domain.json"
"""Name of the domain file in a model workdir."""
DOMAIN_VERSION = 1
LEVELS: tuple[float, ...] = (
    0.0,
    0.001,
    0.01,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    0.999,
    1.0,
)
"""Quantile levels recorded per input column (17, both ends included)."""


@dataclasses.dataclass(frozen=True)
class Domain:
    """What a model saw in training.

    Attributes:
        rows: Number of training rows.
        lead_min: Smallest training lead time (hours).
        lead_max: Largest training lead time (hours).
        stations: Training station ids (sorted).
        features: Input column -> its values at :data:`LEVELS` on the training rows.
        valid_until: Latest valid time (UTC) of the training rows; ``None``: not recorded.
        periods: Hours covered by the statistic variables (``{"tp": 6.0}``); empty: unknown.
    """

    rows: int
    lead_min: float
    lead_max: float
    stations: tuple[str, ...]
    features: Mapping[str, tuple[float, ...]]
    valid_until: pd.Timestamp | None = None
    periods: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def quantile(self, column: str, level: float) -> float:
        """The training value of ``column`` at one of :data:`LEVELS`."""
        return self.features[column][LEVELS.index(level)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the fixed format of the module docstring)."""
        return {
            "version": DOMAIN_VERSION,
            "rows": int(self.rows),
            "lead_hours": {"min": float(self.lead_min), "max": float(self.lead_max)},
            "stations": list(self.stations),
            "features": {
                col: {"levels": _levels_json(), "values": [float(v) for v in values]}
                for col, values in self.features.items()
            },
        } | (
            ({} if self.valid_until is None else {"valid_until": _iso(self.valid_until)})
            | ({"periods": dict(sorted(self.periods.items()))} if self.periods else {})
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = DOMAIN_FILE) -> Domain:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: Another version, or a field missing or malformed (names ``source``).
        """
        if data.get("version") != DOMAIN_VERSION:
            raise ValueError(
                f"{source}: domain version {data.get('version')!r}; expected {DOMAIN_VERSION}"
            )
        try:
            features = {}
            for col, entry in dict(data["features"]).items():
                levels = [float(v) for v in entry["levels"]]
                values = tuple(float(v) for v in entry["values"])
                if len(values) != len(LEVELS) or not np.allclose(levels, LEVELS):
                    raise ValueError(f"feature {col!r}: expected {len(LEVELS)} values at {LEVELS}")
                features[str(col)] = values
            return cls(
                rows=int(data["rows"]),
                lead_min=float(data["lead_hours"]["min"]),
                lead_max=float(data["lead_hours"]["max"]),
                stations=tuple(str(s) for s in data["stations"]),
                features=features,
                valid_until=(
                    None if data.get("valid_until") is None else _utc(data["valid_until"])
                ),
                periods=periods.parse(data.get("periods"), source),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source}: malformed training domain ({err})") from None


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _iso(value: pd.Timestamp) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_valid_time(frame: pd.DataFrame) -> pd.Timestamp | None:
    """The latest valid time of a station table's rows (``init_time + lead_time`` if absent)."""
    if "valid_time" in frame:
        valid = pd.to_datetime(frame["valid_time"], utc=True)
    elif "init_time" in frame and "lead_time" in frame:
        lead = pd.to_timedelta(frame["lead_time"].astype("float64"), unit="h")
        valid = pd.to_datetime(frame["init_time"], utc=True) + lead
    else:
        return None
    last = valid.max()
    return None if pd.isna(last) else _utc(last)


def _levels_json() -> list[float]:
    """:data:`LEVELS` as written: the ends as the integers 0 and 1."""
    return [int(v) if v in (0.0, 1.0) else v for v in LEVELS]


def domain_from_frame(frame: pd.DataFrame, columns: Sequence[str]) -> Domain:
    """The training domain of ``frame`` (the training rows) for input ``columns``.

    Args:
        frame: Canonical station table of the training rows (``station``, ``lead_time``).
        columns: Raw input columns the model reads (``lead_time`` is recorded as its range
            and skipped here); a column without any finite value is left out (logged).

    Raises:
        ValueError: ``frame`` has no rows or lacks one of ``columns``.
    """
    if not len(frame):
        raise ValueError("cannot record the training domain of an empty table")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"training table lacks input column(s) {absent}")
    lead = frame["lead_time"].to_numpy(dtype="float64")
    features: dict[str, tuple[float, ...]] = {}
    for col in columns:
        if col == "lead_time":
            continue
        values = frame[col].to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if not values.size:
            log.info("%s has no finite training value: not in the training domain", col)
            continue
        features[col] = tuple(float(v) for v in np.quantile(values, LEVELS))
    return Domain(
        rows=len(frame),
        lead_min=float(np.nanmin(lead)),
        lead_max=float(np.nanmax(lead)),
        stations=tuple(sorted({str(s) for s in frame["station"].unique()})),
        features=features,
        valid_until=last_valid_time(frame),
        periods=periods.of(frame.attrs, "training table"),
    )


def save_domain(workdir: str | Path, domain: Domain) -> Path:
    """Write ``<workdir>/domain.json`` atomically (:mod:`probcast.io`)."""
    data = domain.to_dict()
    bad = [c for c, f in data["features"].items() if not all(map(math.isfinite, f["values"]))]
    if bad:
        raise ValueError(f"training domain of {bad} is not finite")
    return write_json(Path(workdir) / DOMAIN_FILE, data)


def load_domain(workdir: str | Path) -> Domain | None:
    """The training domain of a model workdir; ``None`` (one info line) for older models.

    Raises:
        ValueError: The file exists but is unreadable or malformed (names the file).
    """
    path = Path(workdir) / DOMAIN_FILE
    if not path.is_file():
        log.info(
            "%s: no %s (model trained before probcast recorded its training domain): "
            "applicability checks skipped",
            workdir,
            DOMAIN_FILE,
        )
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: unreadable training domain ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return Domain.from_dict(data, str(path))
