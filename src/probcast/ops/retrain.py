"""Scheduled retraining with a CRPS gate: train a challenger, promote it only if it is better.

``probcast retrain --pipeline ops.yaml [--now TIME]`` (the ``retrain:`` block,
:mod:`probcast.ops.retrain_spec`; the pipeline's ``model: {registry: NAME}``):

1. Windows, from ``now``: the held-back period is the last ``holdout_days`` (inits in
   ``[now - holdout, now)``); the training rows are the ``window_days`` before it whose
   *valid* time is before the held-back period too (no observation of the held-back period
   is trained on).
2. The challenger is trained into ``<workdir>/<now>/model`` with the existing training
   (:func:`probcast.train.loop.train`) on that window.
3. Champion (the registry's ``champion`` alias) and challenger predict the held-back rows
   as the pipeline's products do (its ``combine`` and ``quantile_members``; the table's
   observations before each run give the recent-error predictors, as a template does);
   :func:`probcast.verify.evaluate.verify` scores them (mean CRPS per variable). Only rows
   whose valid time is after the champion's training rows (``valid_until`` of its
   ``domain.json``) are scored: a champion is never scored on what it was trained on (an
   error when none is left: retrain later, or set ``holdout_days`` so the held-back period
   starts after it).
4. The challenger is registered (tags: the scores, windows, gate decision) and gets the
   ``challenger`` alias. It is promoted to ``champion`` when there is no champion, or when
   ``CRPS(challenger) <= (1 - margin) * CRPS(champion)``: with several variables the mean of
   the per-variable ratios must pass (``rule: mean``) or every ratio (``rule: every``).
   Otherwise it is recorded as ``rejected by gate``.

``<workdir>/<now>/gate.json`` (written last) records the outcome: the same ``--now`` again
reports it without retraining. ``every_days`` makes a frequent cron harmless: nothing is done
until that long after the last retraining (the model tag ``probcast.last_retrain``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from probcast import io
from probcast.ops.pipeline import Pipeline, PipelineError
from probcast.ops.registry import Registry, Resolved
from probcast.ops.registry_check import check_reachable, mlflow_bounds
from probcast.ops.retrain_spec import RetrainSpec, load_config, parse_retrain

log = logging.getLogger(__name__)

LAST_TAG = "probcast.last_retrain"
GATE_OPTIONS = ("combine", "quantile_members", "batch_size")
"""The pipeline's ``products`` options the gate predicts with, as the cycles do."""
TIME_FORMAT = "%Y-%m-%dT%H:%MZ"


class RetrainError(ValueError):
    """A retraining that cannot be done (the message says what is missing)."""


@dataclasses.dataclass
class RetrainOutcome:
    """What :func:`retrain` did.

    Attributes:
        status: ``promoted``, ``rejected``, ``not due`` or ``done before``.
        version: The registered challenger (``""`` when none was trained).
        champion: The champion before the gate (``""``: none).
        reason: The gate's reason in words.
        scores: ``{"challenger": {var: crps}, "champion": {var: crps}}``.
        folder: The retraining's folder.
    """

    status: str
    version: str = ""
    champion: str = ""
    reason: str = ""
    scores: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    folder: str = ""

    def line(self) -> str:
        """One line for a terminal."""
        head = f"{self.status}" + (f" version {self.version}" if self.version else "")
        return f"{head}: {self.reason}" if self.reason else head


def windows(
    table: pd.DataFrame, now: datetime, spec: RetrainSpec
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The training rows and the held-back rows of ``now`` (see the module docstring)."""
    held_from = pd.Timestamp(now - timedelta(days=spec.holdout_days))
    train_from = held_from - pd.Timedelta(days=spec.window_days)
    stamp = pd.Timestamp(now)
    init, valid = table["init_time"], table["valid_time"]
    train = table[(init >= train_from) & (valid < held_from)]
    held = table[(init >= held_from) & (init < stamp)]
    info = {
        "train_window": f"{train_from:%Y-%m-%dT%HZ}/{held_from:%Y-%m-%dT%HZ}",
        "holdout": f"{held_from:%Y-%m-%dT%HZ}/{stamp:%Y-%m-%dT%HZ}",
        "train_rows": str(len(train)),
        "holdout_rows": str(len(held)),
    }
    for name, part in (("training window", train), ("held-back period", held)):
        if part.empty:
            raise RetrainError(
                f"{spec.table}: no rows in the {name} ({info['train_window']} training, "
                f"{info['holdout']} held back; table inits "
                f"{init.min():%Y-%m-%d} to {init.max():%Y-%m-%d}): check --now, "
                f"retrain.window_days and retrain.holdout_days"
            )
    return train.reset_index(drop=True), held.reset_index(drop=True), info


def build_config(spec: RetrainSpec, data_path: Path, tracking_uri: str) -> Any:
    """The training config: ``spec.config`` with the overrides, reading ``data_path``."""
    try:
        config = load_config(spec, "")
    except PipelineError as err:  # the config changed since the pipeline file was loaded
        raise RetrainError(str(err)) from None
    config.data.path = str(data_path)
    config.data.split_date = ""
    if str(config.tracking.backend) == "mlflow" and not str(config.tracking.uri):
        config.tracking.uri = tracking_uri  # the training run next to the registry
    return config


def unseen(held: pd.DataFrame, champion: Resolved | None, spec: RetrainSpec) -> pd.DataFrame:
    """The held-back rows the champion was not trained on (valid after its training rows).

    Raises:
        RetrainError: None is left (the champion was trained on the whole held-back period).
    """
    from probcast.model.domain import load_domain

    if champion is None:
        return held
    domain = load_domain(champion.workdir)
    until = None if domain is None else domain.valid_until
    if until is None:
        log.warning(
            "champion version %s: its training period is not recorded (trained before "
            "probcast recorded it): the gate cannot make sure it is not scored on its own "
            "training rows",
            champion.version,
        )
        return held
    valid = pd.to_datetime(held["valid_time"], utc=True)
    kept = held[valid > until].reset_index(drop=True)
    if kept.empty:
        raise RetrainError(
            f"the champion (version {champion.version}) was trained on observations up to "
            f"{until:%Y-%m-%dT%H:%MZ}, so no held-back row is new to it (runs from "
            f"{pd.to_datetime(held['init_time'], utc=True).min():%Y-%m-%dT%HZ} held back): "
            "the gate would score it on its own training data; retrain later (--now)"
        )
    if len(kept) < len(held):
        log.info(
            "gate: %d of %d held-back rows are valid after the champion's training rows "
            "(%s): scored on those",
            len(kept),
            len(held),
            f"{until:%Y-%m-%dT%H:%MZ}",
        )
    return kept


def crps_scores(
    workdirs: Mapping[str, Path],
    held: pd.DataFrame,
    variables: tuple[str, ...],
    *,
    history: pd.DataFrame | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean CRPS per variable of each model on the held-back rows: ``{name: {var: crps}}``.

    Args:
        workdirs: Model name -> workdir.
        held: The held-back rows, with their observations.
        variables: Variables to score (empty: every one both predict and the rows observe).
        history: Past rows with observations (the whole table): the recent-error
            predictors of the held-back rows come from it, as from a pipeline's template
            (only observations valid before each run count).
        options: The pipeline's prediction options (``combine``, ``quantile_members``).
    """
    from probcast.predict.request import PredictRequest
    from probcast.predict.runner import run
    from probcast.verify.evaluate import verify

    inputs = held.drop(columns=[c for c in held.columns if c.startswith("obs_")])
    tables: dict[str, pd.DataFrame] = {}
    families: dict[str, dict[str, str]] = {}
    opts = {k: v for k, v in (options or {}).items() if k in GATE_OPTIONS}
    for name, workdir in workdirs.items():
        request = PredictRequest(
            model=workdir, input=inputs, output=None, params=True, template=history, **opts
        )
        result = run(request)
        if result.table is None:
            raise RetrainError(f"{name}: {workdir} predicted no table for the held-back rows")
        tables[name], families[name] = result.table, result.families
    found = set.intersection(*(set(f) for f in families.values()))
    wanted = list(variables) or sorted(v for v in found if f"obs_{v}" in held.columns)
    missing = [v for v in wanted if v not in found or f"obs_{v}" not in held.columns]
    if missing or not wanted:
        raise RetrainError(
            f"retrain.variables: {missing or 'none'} not predicted by every model or not "
            f"observed in the held-back rows (common: {sorted(found)})"
        )
    ver = verify(held, tables, families=families, variables=wanted, by=())
    out = {name: {v: ver.value(name, v, "crps") for v in wanted} for name in workdirs}
    for name, scores in out.items():
        bad = [v for v, s in scores.items() if s != s]  # NaN: nothing scored
        if bad:
            raise RetrainError(f"{name}: no CRPS for {bad} on the held-back rows")
    return out


def decide(
    challenger: Mapping[str, float], champion: Mapping[str, float] | None, margin: float, rule: str
) -> tuple[bool, str, float | None]:
    """The gate: ``(promote, reason, mean ratio)`` (see the module docstring)."""
    if champion is None:
        return True, "no champion: the first version is promoted", None
    ratios = {
        v: challenger[v] / champion[v] if champion[v] > 0 else float("inf") for v in challenger
    }
    mean = sum(ratios.values()) / len(ratios)
    limit = 1.0 - margin
    passed = all(r <= limit for r in ratios.values()) if rule == "every" else mean <= limit
    detail = ", ".join(
        f"{v} {challenger[v]:.4g} vs {champion[v]:.4g} ({ratios[v]:.3f})" for v in ratios
    )
    verdict = "passes" if passed else "rejected by gate"
    what = "every ratio" if rule == "every" else f"mean ratio {mean:.3f}"
    return passed, f"{verdict}: CRPS {detail}; {what} vs limit {limit:.3f}", mean


def _champion(registry: Registry) -> Resolved | None:
    if "champion" not in registry.aliases():
        return None
    return registry.resolve("champion")


def _run_id(workdir: Path, uri: str) -> str | None:
    """The MLflow run of the training when it is tracked in the registry's own store."""
    from probcast.model.integrity import redact

    state = workdir / "tracking.json"
    if not state.exists():
        return None
    found = json.loads(state.read_text())
    return found.get("mlflow_run_id") if found.get("uri") == redact(uri) else None


def retrain(pipe: Pipeline, now: datetime | None = None, *, force: bool = False) -> RetrainOutcome:
    """Retrain, gate and (maybe) promote (see the module docstring).

    Args:
        pipe: A pipeline with ``model: {registry: ...}`` and a ``retrain:`` block.
        now: The retraining's time (default: the clock, UTC).
        force: Retrain even when ``every_days`` says it is not due.

    Raises:
        RetrainError: Bad or insufficient data, config or variables.
        PipelineError: No ``retrain:`` block or no registered model in the pipeline.
    """
    if pipe.registry is None or not pipe.retrain:
        raise PipelineError(
            f"{pipe.name}: retraining needs model: {{registry: NAME}} and a retrain: block"
        )
    spec = parse_retrain(pipe.retrain, pipe.root, pipe.name)
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    folder = spec.workdir / now.strftime("%Y%m%dT%H%MZ")
    if (folder / "gate.json").exists():
        done = json.loads((folder / "gate.json").read_text())
        done.pop("info", None)
        return RetrainOutcome(**{**done, "status": "done before"})
    mlflow_bounds()
    check_reachable(pipe.registry, f"{pipe.name}: model.uri", must_exist=False)
    registry = Registry(pipe.registry)
    last = registry.tags().get(LAST_TAG)
    if last and not force and spec.every_days > 0:
        due = datetime.strptime(last, TIME_FORMAT).replace(tzinfo=UTC) + timedelta(
            days=spec.every_days
        )
        if now < due:
            return RetrainOutcome(
                "not due", reason=f"last retraining {last}, next due {due:%Y-%m-%dT%H:%MZ}"
            )
    from probcast.ingest.tables import read_table
    from probcast.train.loop import train

    config = build_config(spec, folder / "train.parquet", pipe.registry.uri)  # bad: now
    table = read_table(spec.table)
    absent = [v for v in spec.variables if f"obs_{v}" not in table.columns]
    if absent:
        raise RetrainError(f"retrain.variables: {spec.table} has no obs_ column for {absent}")
    training, held_out, info = windows(table, now, spec)
    champion = _champion(registry)  # checked before the training: fail early
    scored = unseen(held_out, champion, spec)
    info["scored_rows"] = str(len(scored))
    folder.mkdir(parents=True, exist_ok=True)
    data = io.write_with(folder / "train.parquet", lambda p: training.to_parquet(p, index=False))
    model = folder / "model"
    log.info("retraining %s on %s rows (%s)", pipe.name, info["train_rows"], info["train_window"])
    config.data.path = str(data)
    train(config, model)
    workdirs = {"challenger": model} | ({"champion": champion.workdir} if champion else {})
    scores = crps_scores(
        workdirs, scored, spec.variables, history=table, options=dict(pipe.request)
    )
    promote, reason, ratio = decide(
        scores["challenger"], scores.get("champion"), spec.margin, spec.rule
    )
    tags: dict[str, Any] = {f"retrain.{k}": v for k, v in info.items()}
    tags |= {f"gate.crps.{who}.{v}": f"{s:.8g}" for who, d in scores.items() for v, s in d.items()}
    tags |= {
        "gate.decision": "promoted" if promote else "rejected by gate",
        "gate.reason": reason,
        "gate.margin": spec.margin,
        "gate.rule": spec.rule,
        "gate.champion_version": champion.version if champion else "",
        "gate.ratio": "" if ratio is None else f"{ratio:.6g}",
        "retrain.now": now.strftime(TIME_FORMAT),
    }
    version = registry.register(model, tags, run_id=_run_id(model, pipe.registry.uri))
    if promote:
        registry.promote(version, by="gate", reason=reason)
    registry.tag_model(LAST_TAG, now.strftime(TIME_FORMAT))
    outcome = RetrainOutcome(
        "promoted" if promote else "rejected",
        version,
        champion.version if champion else "",
        reason,
        scores,
        str(folder),
    )
    io.write_json(folder / "gate.json", dataclasses.asdict(outcome) | {"info": info})
    return outcome
