"""The ``retrain:`` block of a pipeline file (read by ``probcast retrain``).

::

    retrain:
      config: default                 # bundled config name, or a .py file with get_config()
      overrides: {train.epochs: 50}   # config fields (SECTION.FIELD: value)
      table: tables/all.parquet       # canonical station table (e.g. `probcast data build`)
      window_days: 365                # rolling training window before the held-back period
      holdout_days: 14                # newest period, never trained on: the gate's test set
      margin: 0.02                    # promote if CRPS(challenger) <= (1 - margin) * champion's
      rule: mean                      # several variables: mean CRPS ratio, or `every` variable
      variables: [t2m]                # variables of the gate (default: every common one)
      every_days: 7                   # `probcast retrain` does nothing until this is due
      workdir: retrain                # one folder per retraining (tables, model, gate.json)

Relative paths are relative to the pipeline file's folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probcast.ops.pipeline import PipelineError

RULES = ("mean", "every")


@dataclasses.dataclass(frozen=True)
class RetrainSpec:
    """A parsed ``retrain:`` block (see the module docstring)."""

    config: str
    table: Path
    workdir: Path
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    window_days: float = 365.0
    holdout_days: float = 14.0
    margin: float = 0.0
    rule: str = "mean"
    variables: tuple[str, ...] = ()
    every_days: float = 0.0


_FIELDS = frozenset(f.name for f in dataclasses.fields(RetrainSpec))


def _number(block: Mapping[str, Any], key: str, where: str, low: float, high: float) -> float:
    default = getattr(RetrainSpec, key)
    try:
        value = float(block.get(key, default))
    except (TypeError, ValueError):
        value = float("nan")
    if not low <= value <= high:
        raise PipelineError(
            f"{where}: retrain.{key} must be a number in [{low}, {high}], got {block.get(key)!r}"
        )
    return value


def parse_retrain(block: Mapping[str, Any], base: Path, where: str = "pipeline") -> RetrainSpec:
    """Check and parse the ``retrain:`` block (``base``: folder of relative paths).

    Raises:
        PipelineError: Naming the field and what was expected.
    """
    unknown = set(block) - _FIELDS
    if unknown:
        raise PipelineError(
            f"{where}: retrain: unknown keys {sorted(unknown)}; known: {sorted(_FIELDS)}"
        )
    for key in ("config", "table"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise PipelineError(f"{where}: retrain.{key} is required (a string)")
    overrides = block.get("overrides") or {}
    if not isinstance(overrides, Mapping) or not all("." in str(k) for k in overrides):
        raise PipelineError(
            f"{where}: retrain.overrides must map SECTION.FIELD to a value, got {overrides!r}"
        )
    rule = str(block.get("rule", RetrainSpec.rule))
    if rule not in RULES:
        raise PipelineError(f"{where}: retrain.rule must be one of {RULES}, got {rule!r}")
    variables = block.get("variables") or []
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise PipelineError(f"{where}: retrain.variables must be a list of variable names")
    config = str(block["config"])
    if config.endswith(".py") and not Path(config).is_absolute():
        config = str(base / config)
    return RetrainSpec(
        config=config,
        table=_path(base, str(block["table"])),
        workdir=_path(base, str(block.get("workdir") or "retrain")),
        overrides={str(k): v for k, v in overrides.items()},
        window_days=_number(block, "window_days", where, 1e-3, 1e5),
        holdout_days=_number(block, "holdout_days", where, 1e-3, 1e4),
        margin=_number(block, "margin", where, 0.0, 0.99),
        rule=rule,
        variables=tuple(variables),
        every_days=_number(block, "every_days", where, 0.0, 1e4),
    )


def load_config(spec: RetrainSpec, where: str = "pipeline") -> Any:
    """The training config of ``spec``: ``config`` with the ``overrides`` applied.

    Raises:
        PipelineError: A config that cannot be loaded, or an override that is not a config
            field or not of its field's type (naming the field and what was given).
    """
    from probcast.train.cli import load_config as load_named

    head = f"{where}: " if where else ""

    try:
        config = load_named(spec.config)
    except Exception as err:  # a config file runs its own code: any failure is the file's
        raise PipelineError(
            f"{head}retrain.config: {spec.config!r} cannot be loaded: {type(err).__name__}: {err}"
        ) from None
    for key, value in spec.overrides.items():
        section, _, name = key.partition(".")
        if (
            section not in config
            or not hasattr(config[section], "keys")
            or (name not in config[section])
        ):
            raise PipelineError(f"{head}retrain.overrides: {key!r} is not a config field")
        old = config[section][name]
        try:
            if isinstance(old, bool):
                new = value if isinstance(value, bool) else str(value).lower() in ("1", "true")
            elif isinstance(old, int) and float(value) != int(float(value)):
                raise ValueError(f"{value!r} is not a whole number")
            else:
                new = type(old)(value)
        except (TypeError, ValueError, OverflowError):
            raise PipelineError(
                f"{head}retrain.overrides: {key} must be a {type(old).__name__}, got {value!r}"
            ) from None
        config[section][name] = new
    return config


def check_config(spec: RetrainSpec, where: str = "pipeline") -> None:
    """Load the training config and apply the overrides once (:func:`load_config`)."""
    load_config(spec, where)


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
