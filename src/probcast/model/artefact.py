"""The trained-model artefact: everything prediction needs, in one workdir.

Layout::

    <workdir>/config.json      the full training config
    <workdir>/features.json    FeatureSpec: predictors, normalisation stats, stations, scales
    <workdir>/meta.json        heads, probcast/jax versions, git commit, data fingerprint
    <workdir>/summary.json     per-seed best epoch and validation CRPS (after training)
    <workdir>/calibration.json spread factor per target fitted on validation rows, PIT
                               recalibration maps of the targets that passed the gate
                               (:mod:`probcast.train.recalibrate`) (optional)
    <workdir>/blend.json       EMOS-blend weights and local-EMOS coefficients (optional)
    <workdir>/domain.json      training domain: lead range, stations, input quantiles
                               (:mod:`probcast.model.domain`; absent for older models)
    <workdir>/seed_<i>/best/   orbax checkpoint of network i's best parameters
    <workdir>/seed_<i>/latest/ orbax checkpoint to resume training
    <workdir>/COMPLETE.json    written last: sha256 of the files above (but ``latest/``)

:func:`load` checks the marker (:mod:`probcast.model.integrity`: an unfinished or corrupted
model is refused), rebuilds the networks from these files alone (a fresh process needs
nothing else) and returns a :class:`TrainedModel`. Credentials in URIs of the config
(``tracking.uri``) are redacted in the shipped ``config.json``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
from flax import nnx

from probcast import __version__
from probcast.dists.recalibration import load_maps
from probcast.features import FeatureSpec
from probcast.io import write_json
from probcast.model import integrity
from probcast.model.checkpoint import SeedCheckpoints
from probcast.model.domain import load_domain
from probcast.model.network import build_model
from probcast.model.predictor import TrainedModel

ARTEFACT_VERSION = 1
_COMPARED = ("data", "features", "model", "train")


class OtherRunError(ValueError):
    """A work directory already holds a training run with other data or settings.

    Attributes:
        workdir: The work directory.
        changed: What differs (config sections, ``"training data"``).
    """

    def __init__(self, workdir: Path, changed: Sequence[str]) -> None:
        self.workdir, self.changed = workdir, list(changed)
        super().__init__(
            f"{workdir} holds a run with different {', '.join(self.changed)}; resume with the "
            "same config and data, or train into a new workdir"
        )


def seed_dir(workdir: Path, index: int) -> Path:
    """Directory of seed network ``index``."""
    return Path(workdir) / f"seed_{index}"


def git_commit() -> str | None:
    """Commit of the source tree probcast runs from, or ``None`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


_OPERATIONAL = frozenset({"log_every", "checkpoint_every_s"})
"""Settings that change how a run reports and saves, not what it computes."""


def _settings(cfg: Mapping[str, Any], section: str) -> Any:
    """One config section without its operational settings (those may change on resume)."""
    value = cfg.get(section)
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k not in _OPERATIONAL}
    return value


def write_run_files(
    workdir: Path,
    config: ml_collections.ConfigDict,
    spec: FeatureSpec,
    heads: Mapping[str, str],
    *,
    fingerprint: str,
    source: str,
) -> None:
    """Write config, feature spec and metadata; refuse a workdir of a different run.

    The first write of a training into its workdir: once the run is found to be the
    directory's own, the completion marker of a model already there is removed
    (:func:`probcast.model.integrity.clear_marker`) before anything is rewritten, and a
    refused run leaves that model as it was (loadable).

    Raises:
        OtherRunError: If ``workdir`` already holds a run with other data or settings
            (resuming needs the same config and data; start a fresh workdir otherwise).
    """
    workdir = Path(workdir)
    cfg = integrity.redact_tree(json.loads(config.to_json_best_effort()))
    meta_path = workdir / "meta.json"
    if meta_path.exists():
        old_meta = json.loads(meta_path.read_text())
        old_cfg = json.loads((workdir / "config.json").read_text())
        changed = [s for s in _COMPARED if _settings(old_cfg, s) != _settings(cfg, s)]
        if old_meta.get("data_fingerprint") != fingerprint:
            changed.append("training data")
        if changed:
            raise OtherRunError(workdir, changed)
    integrity.clear_marker(workdir)  # rewritten from here on: not a usable model until done
    meta = {
        "artefact_version": ARTEFACT_VERSION,
        "probcast_version": __version__,
        "jax_version": jax.__version__,
        "git_commit": git_commit(),
        "data_fingerprint": fingerprint,
        "data_source": source,
        "targets": list(spec.targets),
        "heads": dict(heads),
        "n_seeds": int(config.train.n_seeds),
    }
    write_json(workdir / "config.json", cfg)
    write_json(workdir / "features.json", spec.to_dict())
    write_json(meta_path, meta)


def write_summary(workdir: Path, seeds: Sequence[Mapping[str, Any]]) -> None:
    """Record the training outcome of every seed network."""
    write_json(Path(workdir) / "summary.json", {"seeds": list(seeds)})


def record_elapsed(workdir: Path, seconds: float) -> None:
    """Add the whole training's elapsed time (``elapsed_s``) to ``summary.json``.

    Everything :func:`probcast.train.train_model` did (reading, features, compilation,
    every network, blend, calibration), not the process start-up; the last process's time
    when a training was resumed. ``probcast cost`` prices a training from it.
    """
    path = Path(workdir) / "summary.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    write_json(path, {**data, "elapsed_s": round(float(seconds), 3)})


def load(workdir: str | Path, *, verify: bool = True) -> TrainedModel:
    """Load a trained model from its workdir (nothing else is needed).

    Args:
        workdir: The training's work directory.
        verify: Check the completion marker and the checksums first (off only for the
            training itself, which loads its own unfinished artefact to calibrate it).

    Raises:
        FileNotFoundError: If ``workdir`` is not a model workdir.
        ValueError: If the model is incomplete or a file differs from its checksum.
    """
    workdir = Path(workdir)
    for name in ("config.json", "features.json", "meta.json"):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir}: not a probcast model workdir (no {name})")
    if verify:
        integrity.verify(workdir)
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    spec = FeatureSpec.from_dict(json.loads((workdir / "features.json").read_text()))
    meta = json.loads((workdir / "meta.json").read_text())
    heads = dict(meta["heads"])
    # Abstract (shape-only) model: nothing is initialised, the checkpoints fill it.
    model = nnx.eval_shape(
        lambda: build_model(
            spec.n_features,
            spec.n_stations,
            heads,
            config.model,
            seed=0,
            private=spec.own_features(),
        )
    )
    graphdef, abstract, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
    nets = []
    for i in range(int(meta["n_seeds"])):
        ckpt = SeedCheckpoints(seed_dir(workdir, i))
        params, _ = ckpt.restore_best(abstract)
        ckpt.close()
        nets.append(nnx.merge(graphdef, params, rest))
    calib = workdir / "calibration.json"
    record = json.loads(calib.read_text()) if calib.exists() else {}
    factors = record.get("spread_factor", {})
    recalibration = load_maps(record, str(calib))
    blend_file = workdir / "blend.json"
    blend = json.loads(blend_file.read_text())["blend"] if blend_file.exists() else {}
    return TrainedModel(
        config,
        spec,
        heads,
        nets,
        meta,
        spread_factor=factors,
        blend=blend,
        domain=load_domain(workdir),
        recalibration=recalibration,
    )
