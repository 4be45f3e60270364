"""Experiment tracking behind one small interface: MLflow (default), wandb or none.

MLflow writes to a local SQLite store (``sqlite:///<workdir>/../mlruns.db`` unless
``config.tracking.uri`` says otherwise) with artefacts next to it in ``mlartifacts/``; open
it with ``mlflow ui --backend-store-uri sqlite:///PATH/mlruns.db`` (the ``mlflow`` package,
not ``mlflow-skinny``, ships the UI). wandb is imported only when selected and runs offline
unless ``WANDB_MODE`` says otherwise. The run id is kept in ``<workdir>/tracking.json`` so a
resumed training continues the same run.

No network call that the user did not ask for: MLflow's usage telemetry (on by default in
MLflow 3) is switched off (``MLFLOW_DISABLE_TELEMETRY=true``) unless the user set that
variable or ``DO_NOT_TRACK`` themselves. Credentials in the tracking URI are redacted
(:func:`probcast.model.integrity.redact`) in logs, in ``tracking.json`` and in the logged
parameters.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from probcast import io
from probcast.model.integrity import redact

log = logging.getLogger(__name__)

TELEMETRY_ENV = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")


def disable_telemetry() -> None:
    """Turn MLflow's usage telemetry off unless the user chose (set either variable)."""
    if not any(name in os.environ for name in TELEMETRY_ENV):
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


BACKENDS = ("mlflow", "wandb", "none")
STATE_FILE = "tracking.json"
"""The run id kept in the workdir, so a resumed training continues the same run."""


class Tracker(Protocol):
    """What the training loop reports to."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (flattened config)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar metrics at ``step``."""

    def log_artifact(self, path: Path) -> None:
        """Attach a file."""

    def end(self, status: str = "FINISHED") -> None:
        """Close the run."""


class NullTracker:
    """Tracks nothing."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Ignore."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Ignore."""

    def log_artifact(self, path: Path) -> None:
        """Ignore."""

    def end(self, status: str = "FINISHED") -> None:
        """Ignore."""


class MlflowTracker:
    """MLflow client on a (by default SQLite) tracking store; no global state."""

    def __init__(
        self, uri: str, experiment: str, run_name: str, tags: Mapping[str, str], state: Path
    ) -> None:
        disable_telemetry()  # before mlflow is first imported
        import mlflow

        self._entities = mlflow.entities
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None:
            exp_id = exp.experiment_id
        else:
            exp_id = self.client.create_experiment(
                experiment, artifact_location=_artifact_root(uri)
            )
        previous = _read_state(state).get("mlflow_run_id")
        if previous:
            self.run_id = str(previous)
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(exp_id, run_name=run_name or None, tags=dict(tags))
            self.run_id = run.info.run_id
            _write_state(
                state, {"backend": "mlflow", "mlflow_run_id": self.run_id, "uri": redact(uri)}
            )
        log.info("mlflow run %s in %s", self.run_id, redact(uri))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (values truncated to MLflow's 6000 characters)."""
        batch = [self._entities.Param(k, redact(str(v))[:6000]) for k, v in params.items()]
        existing = self.client.get_run(self.run_id).data.params
        batch = [p for p in batch if p.key not in existing]
        for i in range(0, len(batch), 100):
            self.client.log_batch(self.run_id, params=batch[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar metrics."""
        now = int(time.time() * 1000)
        batch = [self._entities.Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: Path) -> None:
        """Copy a file into the run's artefact store."""
        self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run finished (or ``FAILED`` / ``KILLED``)."""
        self.client.set_terminated(self.run_id, status=status)


class WandbTracker:
    """Weights & Biases run (offline unless ``WANDB_MODE`` is set)."""

    def __init__(
        self, experiment: str, run_name: str, tags: Mapping[str, str], workdir: Path
    ) -> None:
        try:
            import wandb
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ImportError(
                "tracking.backend='wandb' needs the wandb package: pip install 'probcast[wandb]'"
            ) from err
        os.environ.setdefault("WANDB_MODE", "offline")
        state = workdir / STATE_FILE
        previous = _read_state(state).get("wandb_run_id")
        self.run = wandb.init(
            project=experiment,
            name=run_name or None,
            dir=str(workdir),
            id=previous or None,
            resume="allow",
            tags=[f"{k}={v}"[:64] for k, v in tags.items()],
        )
        _write_state(state, {"backend": "wandb", "wandb_run_id": self.run.id})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters."""
        clean = {k: redact(v) if isinstance(v, str) else v for k, v in params.items()}
        self.run.config.update(clean, allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar metrics."""
        self.run.log(dict(metrics), step=step)

    def log_artifact(self, path: Path) -> None:
        """Save a file with the run."""
        self.run.save(str(path), base_path=str(path.parent), policy="now")

    def end(self, status: str = "FINISHED") -> None:
        """Finish the run."""
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)


def default_uri(workdir: Path) -> str:
    """``sqlite:///<workdir>/../mlruns.db`` (absolute)."""
    return f"sqlite:///{(Path(workdir).resolve().parent / 'mlruns.db')}"


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return None


def _read_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _write_state(path: Path, data: Mapping[str, Any]) -> None:
    io.write_json(path, dict(data))


GENERIC_STEMS = ("train", "test", "data", "table")
"""Table stems that say little alone: the folder's name goes in front in run names."""


def data_label(data_path: str) -> str:
    """Short name of ``config.data.path``: a registry id as it is, else the table's stem.

    A generic stem (``train``, ``test``) gets its folder's name in front
    (``tables/mine/train.parquet`` -> ``mine-train``).
    """
    if not str(data_path):
        return "data"
    p = Path(str(data_path))
    if not p.suffix and not p.exists():
        return str(data_path)  # a registry dataset id
    if p.stem in GENERIC_STEMS and p.parent.name:
        return f"{p.parent.name}-{p.stem}"
    return p.stem


def default_run_name(data_path: str, config_name: str = "", now: datetime | None = None) -> str:
    """``<dataset or table stem>-<config name>-<UTC time yyyymmddTHHMM>`` of a tracked run.

    Used when ``tracking.run_name`` is empty; without a config name (a config built in
    Python) that part is left out.
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M")
    return "-".join(part for part in (data_label(data_path), config_name, stamp) if part)


def make_tracker(
    tracking: Any, workdir: Path, tags: Mapping[str, str], default_name: str = ""
) -> Tracker:
    """Tracker selected by ``config.tracking`` (``backend``, ``uri``, ``experiment``).

    The run is named ``tracking.run_name``, else ``default_name`` (see
    :func:`default_run_name`); a resumed run keeps the name it was created with.
    """
    backend = str(tracking.backend)
    if backend not in BACKENDS:
        raise ValueError(f"tracking.backend must be one of {BACKENDS}, got {backend!r}")
    name = str(tracking.run_name) or default_name
    if backend == "mlflow":
        uri = str(tracking.uri) or default_uri(workdir)
        state = Path(workdir) / STATE_FILE
        return MlflowTracker(uri, str(tracking.experiment), name, tags, state)
    if backend == "wandb":
        return WandbTracker(str(tracking.experiment), name, tags, Path(workdir))
    return NullTracker()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into ``{"train.batch_size": 512, ...}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
