"""The feature spec fitted in one pass over chunks: :meth:`FeatureSpec.fit` out of core.

:class:`SpecAccumulator` sees the fit rows chunk by chunk and keeps per input column the
count, mean and sum of squared deviations (merged with Chan et al.'s parallel formula, so the
result equals the in-memory ``nanmean``/``nanstd`` to rounding), minimum and maximum, whether
a value was missing, the station set, the valid-time range and the same moments of
``obs - fc`` per target. :meth:`SpecAccumulator.spec` then returns the :class:`FeatureSpec`
that :meth:`FeatureSpec.fit` would have fitted on all those rows at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from probcast import station_ids
from probcast.features import _MIN_STD, FeatureSpec, _option
from probcast.model.domain import last_valid_time
from probcast.schema import FC_PREFIX, OBS_PREFIX
from probcast.time_features import use_day_of_year


@dataclasses.dataclass
class Moments:
    """Count, mean and sum of squared deviations of the finite values of some columns."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def zeros(cls, k: int) -> Moments:
        """Empty moments of ``k`` columns."""
        return cls(np.zeros(k), np.zeros(k), np.zeros(k))

    def add(self, values: np.ndarray) -> None:
        """Merge the finite values of ``values`` ``(n, k)`` (Chan et al. 1979)."""
        ok = np.isfinite(values)
        n = ok.sum(axis=0).astype("float64")
        v = np.where(ok, values, 0.0)
        mean = v.sum(axis=0) / np.maximum(n, 1.0)
        m2 = (np.where(ok, values - mean, 0.0) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        safe = np.maximum(total, 1.0)
        self.mean = self.mean + delta * n / safe
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / safe
        self.count = total

    def std(self) -> np.ndarray:
        """Population standard deviation (``ddof=0``); NaN without values."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.where(self.count > 0, self.m2 / self.count, np.nan))


class SpecAccumulator:
    """Streaming :meth:`FeatureSpec.fit` over the fit rows (see the module docstring).

    Args:
        template: A spec fitted on the first chunk: its columns, targets and options are
            kept (they depend on the table's columns and the config only).
        config: ``config.features``.
    """

    def __init__(self, template: FeatureSpec, config: Mapping[str, Any]) -> None:
        self.template, self.config = template, config
        k = len(template.columns)
        self.values = Moments.zeros(k)
        self.errors = Moments.zeros(len(template.targets))
        self.low = np.full(k, np.inf)
        self.high = np.full(k, -np.inf)
        self.missing = np.zeros(k, dtype=bool)
        self.stations: set[str] = set()
        self.valid: list[pd.Timestamp] = []
        self.rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Account for one chunk of fit rows."""
        t = self.template
        values = frame[t.columns].to_numpy(dtype="float64")
        finite = np.isfinite(values)
        self.missing |= ~finite.all(axis=0)
        self.values.add(values)
        self.low = np.fmin(self.low, np.where(finite, values, np.inf).min(axis=0))
        self.high = np.fmax(self.high, np.where(finite, values, -np.inf).max(axis=0))
        obs = frame[[OBS_PREFIX + v for v in t.targets]].to_numpy(dtype="float64")
        fc = frame[[FC_PREFIX + v for v in t.targets]].to_numpy(dtype="float64")
        self.errors.add(obs - fc)
        self.stations.update(station_ids.text_of(s) for s in pd.unique(frame["station"]))
        vt = pd.to_datetime(frame["valid_time"], utc=True)
        self.valid = [vt.min(), vt.max(), *self.valid]
        self.valid = [min(self.valid), max(self.valid)]
        self.rows += len(frame)

    def spec(self) -> FeatureSpec:
        """The fitted spec.

        Raises:
            ValueError: No rows were seen, or ``features.missing = "error"`` and a
                predictor had missing values.
        """
        t = self.template
        if not self.rows:
            raise ValueError("cannot fit features on an empty training table")
        indicators = [c for c, m in zip(t.columns, self.missing, strict=True) if m]
        if indicators and _option(self.config, "missing") == "error":
            raise ValueError(f"training predictors have missing values: {indicators}")
        seen = np.isfinite(self.values.mean) & (self.values.count > 0)
        mean = np.where(seen, self.values.mean, 0.0)
        std = self.values.std()
        std = np.where(np.isfinite(std) & (std > _MIN_STD), std, 1.0)
        err = self.errors.std()
        scale = np.where((self.errors.count > 1) & (err > _MIN_STD), err, 1.0)
        doy = t.cyclic and use_day_of_year(self.valid, _option(self.config, "day_of_year"))
        return dataclasses.replace(
            t,
            mean=[float(v) for v in mean],
            std=[float(v) for v in std],
            indicators=indicators,
            stations=sorted(self.stations),
            scale=[float(v) for v in scale],
            doy=bool(doy),
        )

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Exact ``(min, max)`` of each input column with a finite value."""
        return {
            c: (float(lo), float(hi))
            for c, lo, hi in zip(self.template.columns, self.low, self.high, strict=True)
            if np.isfinite(lo)
        }


class Extent:
    """Stations, lead range and per-column minimum and maximum of all usable rows.

    Merged chunk by chunk (the domain's exact end points, :func:`probcast.train.stream.scan`);
    its size does not grow with the number of chunks.

    Args:
        columns: The spec's input columns (``lead_time`` is kept apart).
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = [c for c in columns if c != "lead_time"]
        self.stations: set[str] = set()
        self.lead_min, self.lead_max = np.inf, -np.inf
        self.low = np.full(len(self.columns), np.inf)
        self.high = np.full(len(self.columns), -np.inf)
        self.valid_until: pd.Timestamp | None = None

    def add(self, frame: pd.DataFrame) -> None:
        """Account for one chunk of usable rows."""
        values = frame[self.columns].to_numpy(dtype="float64")
        self.low = np.fmin(self.low, np.nanmin(values, axis=0, initial=np.inf))
        self.high = np.fmax(self.high, np.nanmax(values, axis=0, initial=-np.inf))
        lead = frame["lead_time"].to_numpy(dtype="float64")
        self.lead_min = float(np.fmin(self.lead_min, np.nanmin(lead, initial=np.inf)))
        self.lead_max = float(np.fmax(self.lead_max, np.nanmax(lead, initial=-np.inf)))
        self.stations.update(station_ids.text_of(s) for s in pd.unique(frame["station"]))
        last = last_valid_time(frame)
        if last is not None and (self.valid_until is None or last > self.valid_until):
            self.valid_until = last

    def ranges(self) -> tuple[dict[str, float], dict[str, float]]:
        """``(minimum, maximum)`` of each column (infinite where no value was seen)."""
        low = dict(zip(self.columns, map(float, self.low), strict=True))
        return low, dict(zip(self.columns, map(float, self.high), strict=True))
