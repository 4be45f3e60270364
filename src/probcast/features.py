"""Station table -> model inputs: one code path for training and prediction.

:meth:`FeatureSpec.fit` learns everything that depends on the training rows (predictor
list, normalisation statistics, station vocabulary, per-target error scale) and
:meth:`FeatureSpec.transform` applies it to any table, so the network sees exactly the same
features at prediction time as in training. The spec is saved as JSON in the model artefact.

Features, in order: every predictor column (``fc_*`` and ``stat_*``, the raw forecasts of the
targets included), lead time, latitude/longitude/altitude when present (all standardised
with the training mean and standard deviation), sin/cos of hour of day and (when the training
period spans most of a year) of day of year of the valid time, then one 0/1 missing indicator
per predictor that had missing values in training.

Missing predictors are imputed with the training mean (0 after standardisation) and flagged
by the indicator; a column that had no missing values in training gets no indicator and a
warning when values are missing at prediction time. The raw forecast ``fc_<target>`` is the
centre of each predictive distribution and may never be missing: :meth:`transform` raises,
naming the column and rows; :func:`usable_rows` drops such rows from training data.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from probcast import recent, station_ids
from probcast.configs import default as default_config
from probcast.schema import FC_PREFIX, OBS_PREFIX, STATIC_COLUMNS, targets_in
from probcast.time_features import cyclic, use_day_of_year

log = logging.getLogger(__name__)

STAT_PREFIX = "stat_"
UNKNOWN_STATION = 0
"""Embedding index of a station not seen in training."""
_MIN_STD = 1e-6


@dataclasses.dataclass(frozen=True)
class Batch:
    """Model inputs of a table, row order preserved.

    Attributes:
        x: Standardised features, float32 ``(n, f)``.
        station: Station embedding index, int32 ``(n,)`` (0 = unknown station).
        center: Raw forecast of each target, float32 ``(n, T)``.
        scale: Typical error spread of each target, float32 ``(T,)``.
        y: Observations, float32 ``(n, T)``, NaN where missing (all NaN without obs columns).
        mask: ``isfinite(y)``, bool ``(n, T)``.
        emos: Per blended target, local-EMOS parameters ``(n,)`` of each row
            (:mod:`probcast.train.blend`); empty when the model blends nothing.
    """

    x: np.ndarray
    station: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    emos: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _option(config: Mapping[str, Any] | None, key: str) -> Any:
    """``config[key]``, else the default of ``configs/default.py`` (the one home of defaults)."""
    if config is not None and key in config:
        return config[key]
    return default_config.get_config().features[key]


def _split_names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class MissingColumnsError(ValueError):
    """A table to predict lacks input columns the model was trained with."""

    def __init__(self, absent: Sequence[str], targets: Sequence[str]) -> None:
        super().__init__(
            f"no column {list(absent)}, an input of the model (targets {list(targets)}): a "
            "table of other variables or predictors than it was trained on?"
        )


def resolve_targets(table: pd.DataFrame, targets: str | Sequence[str] | None) -> list[str]:
    """Return the target variables.

    ``targets`` when given (each must have ``obs_<var>`` and ``fc_<var>`` columns), else every
    variable with both columns (an ``obs_`` column without a raw forecast is skipped).
    """
    names = _split_names(targets)
    if not names:
        found = targets_in(list(table.columns))
        names = [v for v in found if FC_PREFIX + v in table.columns]
        if len(names) < len(found):
            log.info("no raw forecast for %s: not targets", sorted(set(found) - set(names)))
    if not names:
        raise ValueError(
            "no targets: the table has no pair of obs_<var> and fc_<var> columns "
            f"(columns: {list(table.columns)})"
        )
    for var in names:
        for col in (OBS_PREFIX + var, FC_PREFIX + var):
            if col not in table.columns:
                raise ValueError(
                    f"target {var!r} needs column {col!r}; the table has {list(table.columns)}"
                )
    return names


def usable_rows(table: pd.DataFrame, targets: Sequence[str]) -> pd.DataFrame:
    """Training rows: raw forecast of every target present and at least one observation."""
    fc = table[[FC_PREFIX + v for v in targets]].notna().all(axis=1)
    obs = table[[OBS_PREFIX + v for v in targets]].notna().any(axis=1)
    keep = fc & obs
    if (~keep).any():
        log.info(
            "dropping %d of %d training rows (missing raw forecast or all observations)",
            int((~keep).sum()),
            len(table),
        )
    return table[keep].reset_index(drop=True)


@dataclasses.dataclass
class FeatureSpec:
    """Everything fitted on the training rows that turns a table into a :class:`Batch`.

    Attributes:
        targets: Target variables (``obs_<var>`` / centre ``fc_<var>``).
        columns: Table columns standardised into features (predictors, lead time, statics).
        mean: Training mean of each of ``columns``.
        std: Training standard deviation of each of ``columns``.
        indicators: Columns that get a missing-value indicator feature.
        cyclic: Whether sin/cos of hour of day (and of day of year, see ``doy``) are features.
        stations: Station vocabulary; station ``stations[i]`` has embedding index ``i + 1``.
        scale: Training standard deviation of ``obs - fc`` per target.
        doy: Whether sin/cos of day of year are features (with ``cyclic``); chosen by
            :func:`use_day_of_year` from the training period.
        grid: For a model trained on gridded data, the training grid and its neighbourhood
            settings (:func:`probcast.align.points.grid_description`, taken from
            ``table.attrs["grid"]``), so that prediction rebuilds the same features.
    """

    targets: list[str]
    columns: list[str]
    mean: list[float]
    std: list[float]
    indicators: list[str]
    cyclic: bool
    stations: list[str]
    scale: list[float]
    grid: dict[str, Any] | None = None
    doy: bool = True
    recent_hours: float = 0.0

    @classmethod
    def fit(
        cls,
        table: pd.DataFrame,
        targets: str | Sequence[str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> FeatureSpec:
        """Fit the spec on training rows.

        Args:
            table: Canonical station table of the training rows only.
            targets: Target variables; ``None`` or ``""`` for every ``obs_`` column.
            config: Feature options (``config.features``; missing keys take the defaults of
                ``configs/default.py``): ``predictors`` (comma list,
                ``""`` for all ``fc_*``/``stat_*``), ``lead_time``, ``statics``, ``cyclic``,
                ``missing`` (``"impute"`` or ``"error"``), ``day_of_year`` (``"auto"``,
                see :func:`use_day_of_year`).

        Returns:
            The fitted spec.
        """
        missing = _option(config, "missing")
        if missing not in ("impute", "error"):  # anything else would silently impute
            raise ValueError(f"features.missing must be 'impute' or 'error', got {missing!r}")
        names = resolve_targets(table, targets)
        columns = _predictors(table, names, _split_names(_option(config, "predictors")))
        hours = 0.0 if table.attrs.get("grid") else float(_option(config, "recent_error_hours"))
        table = recent.with_recent_errors(table, names, hours)
        columns += [c for c in recent.columns(names) if hours > 0 and c not in columns]
        if _option(config, "lead_time"):
            columns.append("lead_time")
        if _option(config, "statics"):
            columns += [c for c in STATIC_COLUMNS if c in table.columns]
        if not len(table):
            raise ValueError("cannot fit features on an empty training table")
        gaps, mean, std = np.array([_moments(_floats(table[c])) for c in columns]).T
        # recent errors are missing in operational inputs: always with an indicator
        always = set(recent.columns(names)) if hours > 0 else set()
        flagged = zip(columns, gaps > 0, strict=True)
        indicators = [c for c, m in flagged if m or c in always]
        if indicators and missing == "error":
            raise ValueError(f"training predictors have missing values: {indicators}")
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > _MIN_STD), std, 1.0)
        cyclic = bool(_option(config, "cyclic"))
        doy = cyclic and use_day_of_year(recent.valid_times(table), _option(config, "day_of_year"))
        return cls(
            targets=names,
            columns=columns,
            mean=[float(v) for v in mean],
            std=[float(v) for v in std],
            indicators=indicators,
            cyclic=cyclic,
            stations=sorted(station_ids.text_of(s) for s in table["station"].unique()),
            scale=[_error_scale(table, v) for v in names],
            grid=dict(table.attrs["grid"]) if table.attrs.get("grid") else None,
            doy=doy,
            recent_hours=hours,
        )

    @property
    def n_features(self) -> int:
        """Width of :attr:`Batch.x`."""
        n_cyclic = (2 + 2 * int(self.doy)) if self.cyclic else 0
        return len(self.columns) + n_cyclic + len(self.indicators)

    @property
    def n_stations(self) -> int:
        """Embedding table size (training stations plus the unknown station)."""
        return len(self.stations) + 1

    def feature_names(self) -> list[str]:
        """Names of the columns of :attr:`Batch.x`."""
        names = list(self.columns)
        if self.cyclic and self.doy:
            names += ["sin_hour", "sin_doy", "cos_hour", "cos_doy"]
        elif self.cyclic:
            names += ["sin_hour", "cos_hour"]
        return names + [f"missing_{c}" for c in self.indicators]

    def own_features(self) -> dict[str, list[int]]:
        """Per target, the positions in :attr:`Batch.x` of the features about it alone.

        Its recent error ``err_<var>`` and that error's missing indicator (the network feeds
        them to the target's head only: :mod:`probcast.model.routing`).
        """
        pos = {name: i for i, name in enumerate(self.feature_names())}
        own = {v: [recent.PREFIX + v, f"missing_{recent.PREFIX}{v}"] for v in self.targets}
        return {v: [pos[c] for c in cols if c in pos] for v, cols in own.items()}

    def transform(self, table: pd.DataFrame) -> Batch:
        """Turn a canonical station table into model inputs (same rows, same order).

        Raises:
            ValueError: If a predictor column is absent or a raw forecast ``fc_<target>`` is
                missing (the message names the column and the first bad rows).
        """
        table = self.derive(table)
        absent = [c for c in self.columns if c not in table.columns]
        if absent:
            raise MissingColumnsError(absent, self.targets)
        center = _center(table, self.targets)
        x = np.empty((len(table), self.n_features), dtype=np.float32)  # filled column-wise
        missing = np.empty((len(table), len(self.columns)), dtype=bool)
        cols = [_floats(table[c]) for c in self.columns]  # views of float columns
        for a in range(0, len(table), 1 << 14):  # row blocks: x's rows stay in cache
            b = slice(a, a + (1 << 14))
            for j, values in enumerate(cols):
                v = values[b].astype(np.float64)
                missing[b, j] = ~np.isfinite(v)
                x[b, j] = np.where(missing[b, j], 0.0, (v - self.mean[j]) / self.std[j])
        _warn_unflagged(self.columns, self.indicators, missing)
        k = self.n_features - len(self.indicators)  # the indicators come last
        if self.cyclic:
            x[:, len(self.columns) : k] = cyclic(recent.valid_times(table), self.doy)
        x[:, k:] = missing[:, [self.columns.index(c) for c in self.indicators]]
        y = _observations(table, self.targets)
        return Batch(
            x=x,
            station=self.station_index(table["station"]),
            center=center.astype("float32"),
            scale=np.asarray(self.scale, dtype="float32"),
            y=y.astype("float32"),
            mask=np.isfinite(y),
        )

    def derive(self, table: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """``table`` with the derived predictors it lacks (recent errors, :mod:`recent`).

        ``history``: past rows with observations (:func:`recent.with_recent_errors`).
        """
        return recent.with_recent_errors(table, self.targets, self.recent_hours, history)

    def station_index(self, stations: pd.Series) -> np.ndarray:
        """Embedding index of each station; 0 for stations unseen in training."""
        vocab = {s: i + 1 for i, s in enumerate(self.stations)}
        # one dictionary look-up per distinct station, not per row
        codes, uniques = pd.factorize(pd.Series(stations), use_na_sentinel=False)
        lookup = [vocab.get(station_ids.text_of(s), UNKNOWN_STATION) for s in uniques]
        idx = np.asarray(lookup, dtype="int32")[codes] if len(codes) else np.zeros(0, "int32")
        pad = np.asarray([station_ids.is_pad(s) for s in uniques], dtype=bool)
        unseen = int(((idx == UNKNOWN_STATION) & ~pad[codes]).sum()) if len(codes) else 0
        if unseen:
            log.info("%d rows are at stations unseen in training (unknown embedding)", unseen)
        return idx

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown feature spec fields {sorted(unknown)}")
        return cls(**{k: data[k] for k in fields if k in data})  # optional fields: defaults


def _predictors(table: pd.DataFrame, targets: list[str], wanted: list[str]) -> list[str]:
    if wanted:
        absent = [c for c in wanted if c not in table.columns]
        if absent:
            raise ValueError(f"predictor columns {absent} are not in the table")
        cols = list(wanted)
    else:
        cols = [c for c in table.columns if c.startswith((FC_PREFIX, STAT_PREFIX))]
    # The raw forecasts of the targets are always predictors.
    return cols + [FC_PREFIX + v for v in targets if FC_PREFIX + v not in cols]


def _error_scale(table: pd.DataFrame, var: str) -> float:
    sd = _moments((table[OBS_PREFIX + var] - table[FC_PREFIX + var]).to_numpy())[2]
    return float(sd) if sd > _MIN_STD else 1.0  # one row: sd 0; none: NaN


def _moments(values: np.ndarray) -> tuple[float, float, float]:
    """Missing count, mean and standard deviation (float64) of a column's finite values."""
    finite = values[np.isfinite(values)].astype(np.float64)
    if not len(finite):
        return float(len(values)), np.nan, np.nan
    return float(len(values) - len(finite)), finite.mean(), finite.std()


def _floats(column: pd.Series) -> np.ndarray:
    """A float column's values without a copy; any other column as float64."""
    plain = column.dtype in (np.float32, np.float64)
    return column.to_numpy() if plain else column.to_numpy(dtype="float64")


def _center(table: pd.DataFrame, targets: list[str]) -> np.ndarray:
    cols = [FC_PREFIX + v for v in targets]
    absent = [c for c in cols if c not in table.columns]
    if absent:
        raise ValueError(f"table lacks the raw forecast column(s) {absent}")
    center = table[cols].to_numpy(dtype="float64")
    bad = ~np.isfinite(center)
    if bad.any():
        rows, which = np.nonzero(bad)
        raise ValueError(
            f"raw forecast {cols[which[0]]!r} is missing in {int(bad.any(axis=1).sum())} row(s) "
            f"(first rows: {rows[:5].tolist()}); it is the centre of the predictive "
            f"distribution, so drop or fill these rows first"
        )
    return center


def _observations(table: pd.DataFrame, targets: list[str]) -> np.ndarray:
    out = np.full((len(table), len(targets)), np.nan)
    for j, var in enumerate(targets):
        if OBS_PREFIX + var in table.columns:
            out[:, j] = table[OBS_PREFIX + var].to_numpy(dtype="float64")
    return out


def _warn_unflagged(columns: list[str], indicators: list[str], missing: np.ndarray) -> None:
    for j, col in enumerate(columns):
        n = int(missing[:, j].sum())
        if n and col not in indicators:
            log.warning(
                "%s: %d missing value(s) imputed with the training mean (no missing values "
                "were seen in training, so the model has no indicator for them)",
                col,
                n,
            )
