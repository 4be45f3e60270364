"""Thresholds of the monitor: the ``monitor:`` block of a pipeline (or any YAML) file.

The block, its defaults and its parser live in :mod:`probcast.configs._monitor`, below both
the monitor and the operational pipeline, so that :func:`probcast.ops.pipeline.load` checks
a pipeline file's ``monitor:`` block when the file is read (a typo fails ``probcast run``
at once, not the monitor CronJob later); ``probcast monitor`` reads it with the same
parser. This module keeps the monitor's names for it.
"""

from __future__ import annotations

from probcast.configs._monitor import (
    OVERRIDE_FLAGS,
    REFERENCES,
    DriftConfig,
    MonitorConfig,
    MonitorConfigError,
    SkillConfig,
    load_config,
    parse_config,
    with_overrides,
)

__all__ = [
    "OVERRIDE_FLAGS",
    "REFERENCES",
    "DriftConfig",
    "MonitorConfig",
    "MonitorConfigError",
    "SkillConfig",
    "load_config",
    "parse_config",
    "with_overrides",
]
