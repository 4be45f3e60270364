"""Thresholds of the monitor: the ``monitor:`` block of a pipeline (or any YAML) file.

::

    monitor:
      drift:
        psi: 0.25              # alert when a feature's PSI exceeds this
        ks: 0.2                # ... or its Kolmogorov-Smirnov distance
        spread_ratio: 2.0      # interdecile range / reference's above this or below 1/this
        min_rows: 100          # fewer values of a feature: reported, never alerted
        features: [fc_t2m]     # default: every reference feature present in the input
      skill:
        window_days: 14        # rolling window (days of issue time) of the skill metrics
        min_cases: 200         # fewer cases in a window: reported, never alerted
        obs_grace_days: 10     # a case still without observation this long is given up
        crpss_floor: {raw: 0.0, emos: -0.1}   # alert when rolling CRPSS falls below
        pit_max_dev: 0.05      # alert when a PIT bin's frequency is this far from 1/bins
        pit_bins: 10
        bias_shift: 0.5        # |shift of mean(fc - obs)| in reference error sds
        nwp_window_days: 3     # window of the bias-shift check (possible NWP change)
        lead_groups: [24, 48, 72, 120, 240]   # upper edges (h) of the lead-time groups
        station_groups: {coast: [ST01, ST02]} # others form the group "other"

Every key is optional (the defaults are above). The block is parsed here, below both
its readers: :func:`probcast.ops.pipeline.load` checks a pipeline file's block when the
file is read (every command, ``probcast run --status`` too), and ``probcast monitor``
(:mod:`probcast.monitor.config`, which re-exports these names) uses it. Only the standard
library and PyYAML are imported, so loading a pipeline stays fast. (The leading
underscore keeps this module out of the bundled training configs,
:func:`probcast.configs.available`.)
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

log = logging.getLogger(__name__)


class MonitorConfigError(ValueError):
    """A ``monitor:`` block that cannot be used (the message names the file and key)."""


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of input drift (see the module docstring)."""

    psi: float = 0.25
    ks: float = 0.2
    spread_ratio: float = 2.0
    min_rows: int = 100
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkillConfig:
    """Thresholds and windows of skill monitoring (see the module docstring)."""

    window_days: float = 14.0
    min_cases: int = 200
    crpss_floor: Mapping[str, float] = field(default_factory=lambda: {"raw": 0.0, "emos": -0.1})
    pit_max_dev: float = 0.05
    pit_bins: int = 10
    bias_shift: float = 0.5
    nwp_window_days: float = 3.0
    obs_grace_days: float = 10.0
    lead_groups: tuple[float, ...] = (24.0, 48.0, 72.0, 120.0, 240.0)
    station_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitorConfig:
    """The whole ``monitor:`` block."""

    drift: DriftConfig = field(default_factory=DriftConfig)
    skill: SkillConfig = field(default_factory=SkillConfig)


REFERENCES = ("raw", "emos")


def _number(where: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise MonitorConfigError(f"{where}: expected a number, got {value!r}")
    if positive and not value > 0:
        raise MonitorConfigError(f"{where}: expected a number > 0, got {value!r}")
    if positive and not math.isfinite(value):
        raise MonitorConfigError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _section(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise MonitorConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(names))
    if unknown:
        raise MonitorConfigError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = _value(f"{where}.{key}", str(key), value)
    return cls(**out)


def _value(where: str, key: str, value: Any) -> Any:
    if key in ("min_rows", "min_cases", "pit_bins"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MonitorConfigError(f"{where}: expected an integer >= 1, got {value!r}")
        return value
    if key == "features":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MonitorConfigError(f"{where}: expected a list of column names, got {value!r}")
        return tuple(value)
    if key == "crpss_floor":
        if not isinstance(value, Mapping) or set(map(str, value)) - set(REFERENCES):
            raise MonitorConfigError(
                f"{where}: expected a mapping with keys from {REFERENCES}, got {value!r}"
            )
        return {str(k): _number(f"{where}.{k}", v, positive=False) for k, v in value.items()}
    if key == "lead_groups":
        if not isinstance(value, list):
            raise MonitorConfigError(f"{where}: expected a list of hours, got {value!r}")
        edges = tuple(_number(where, v) for v in value)
        if list(edges) != sorted(set(edges)):
            raise MonitorConfigError(f"{where}: expected ascending distinct hours, got {value}")
        return edges
    if key == "station_groups":
        if not isinstance(value, Mapping) or not all(isinstance(v, list) for v in value.values()):
            raise MonitorConfigError(
                f"{where}: expected a mapping group -> list of stations, got {value!r}"
            )
        return {str(k): tuple(map(str, v)) for k, v in value.items()}
    return _number(where, value)


def parse_config(data: Any, source: str = "<monitor>") -> MonitorConfig:
    """Build a :class:`MonitorConfig` from the parsed ``monitor:`` mapping (None: defaults).

    Args:
        data: The value of the ``monitor:`` key (``None``: the defaults).
        source: The file (or other origin) named in error messages.

    Returns:
        The thresholds, every key not given at its default.

    Raises:
        MonitorConfigError: An unknown key or a bad value; the message names ``source``,
            the key (``monitor.drift.psi``), what was expected and what was given.
    """
    if data is None:
        return MonitorConfig()
    if not isinstance(data, Mapping):
        raise MonitorConfigError(
            f"{source}: monitor: expected a mapping with keys drift, skill, got {data!r}"
        )
    unknown = sorted(set(map(str, data)) - {"drift", "skill"})
    if unknown:
        raise MonitorConfigError(f"{source}: monitor: unknown keys {unknown}; known: drift, skill")
    return MonitorConfig(
        drift=_section(DriftConfig, data.get("drift"), f"{source}: monitor.drift"),
        skill=_section(SkillConfig, data.get("skill"), f"{source}: monitor.skill"),
    )


def load_config(path: str | Path | None) -> MonitorConfig:
    """The ``monitor:`` block of a YAML file (a pipeline file or a file of its own).

    A file without a ``monitor:`` key gives the defaults (with a warning when it has other
    top-level keys; refused when one of them looks like a misspelt ``monitor``); ``None``
    too.

    Raises:
        FileNotFoundError: No such file.
        MonitorConfigError: Invalid YAML or an invalid block (the message names the key).
    """
    if path is None:
        return MonitorConfig()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such monitor configuration file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise MonitorConfigError(f"{p}: invalid YAML ({err})") from None
    if not isinstance(data, Mapping):
        raise MonitorConfigError(f"{p}: expected a YAML mapping at the top")
    if "monitor" not in data and data:
        keys = sorted(map(str, data))
        close = difflib.get_close_matches("monitor", keys, n=1, cutoff=0.7)
        if close:
            raise MonitorConfigError(
                f"{p}: no 'monitor:' block; did you mean 'monitor' for {close[0]!r}? "
                f"(top-level keys: {', '.join(keys)})"
            )
        log.warning(
            "%s: no 'monitor:' block (top-level keys: %s); using the default thresholds",
            p,
            ", ".join(keys),
        )
    return parse_config(data.get("monitor"), str(p))


OVERRIDE_FLAGS = {"window_days": "--window"}
"""Command-line options that override a skill setting (named in error messages)."""


def with_overrides(config: MonitorConfig, **skill: Any) -> MonitorConfig:
    """``config`` with the skill settings given (None values are ignored).

    The values are checked as in the file (``--window 0`` is refused like
    ``window_days: 0``).

    Raises:
        MonitorConfigError: A value the ``monitor:`` block would refuse (the message names
            the option).
    """
    changes = {
        k: _value(OVERRIDE_FLAGS.get(k, f"skill.{k}"), k, v)
        for k, v in skill.items()
        if v is not None
    }
    return dataclasses.replace(config, skill=dataclasses.replace(config.skill, **changes))
