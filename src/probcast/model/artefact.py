"""The trained-model artefact: everything prediction needs, in one workdir.

Layout::

    <workdir>/config.json      the full training config
    <workdir>/features.json    FeatureSpec: predictors, normalisation stats, stations, scales
    <workdir>/meta.json        heads, probcast/jax versions, git commit, data fingerprint
    <workdir>/summary.json     per-seed best epoch and validation CRPS (after training)
    <workdir>/calibration.json spread factor per target fitted on validation rows (optional)
    <workdir>/seed_<i>/best/   orbax checkpoint of network i's best parameters
    <workdir>/seed_<i>/latest/ orbax checkpoint to resume training

:func:`load` rebuilds the networks from these files alone (a fresh process needs nothing
else) and returns a :class:`TrainedModel`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
from flax import nnx
from jax.scipy.special import ndtr

from probcast import __version__, dists
from probcast.features import Batch, FeatureSpec
from probcast.model.network import build_model, predictive

ARTEFACT_VERSION = 1
_COMPARED = ("data", "features", "model", "train")


def seed_dir(workdir: Path, index: int) -> Path:
    """Directory of seed network ``index``."""
    return Path(workdir) / f"seed_{index}"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False, default=str))
    tmp.replace(path)


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

    Raises:
        ValueError: If ``workdir`` already holds a run with other data or settings (resuming
            needs the same config and data; start a fresh workdir otherwise).
    """
    workdir = Path(workdir)
    cfg = json.loads(config.to_json_best_effort())
    meta_path = workdir / "meta.json"
    if meta_path.exists():
        old_meta = json.loads(meta_path.read_text())
        old_cfg = json.loads((workdir / "config.json").read_text())
        changed = [s for s in _COMPARED if old_cfg.get(s) != cfg.get(s)]
        if old_meta.get("data_fingerprint") != fingerprint:
            changed.append("training data")
        if changed:
            raise ValueError(
                f"{workdir} holds a run with different {', '.join(changed)}; resume with the "
                f"same config and data, or train into a new workdir"
            )
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


def load(workdir: str | Path) -> TrainedModel:
    """Load a trained model from its workdir (nothing else is needed)."""
    from probcast.model.checkpoint import SeedCheckpoints

    workdir = Path(workdir)
    for name in ("config.json", "features.json", "meta.json"):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir}: not a probcast model workdir (no {name})")
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    spec = FeatureSpec.from_dict(json.loads((workdir / "features.json").read_text()))
    meta = json.loads((workdir / "meta.json").read_text())
    heads = dict(meta["heads"])
    # Abstract (shape-only) model: nothing is initialised, the checkpoints fill it.
    model = nnx.eval_shape(
        lambda: build_model(spec.n_features, spec.n_stations, heads, config.model, seed=0)
    )
    graphdef, abstract, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
    nets = []
    for i in range(int(meta["n_seeds"])):
        ckpt = SeedCheckpoints(seed_dir(workdir, i))
        params, _ = ckpt.restore_best(abstract)
        ckpt.close()
        nets.append(nnx.merge(graphdef, params, rest))
    calib = workdir / "calibration.json"
    factors = json.loads(calib.read_text())["spread_factor"] if calib.exists() else {}
    blend_file = workdir / "blend.json"
    blend = json.loads(blend_file.read_text())["blend"] if blend_file.exists() else {}
    return TrainedModel(config, spec, heads, nets, meta, spread_factor=factors, blend=blend)


@functools.lru_cache(maxsize=16)
def _compiled_forward(graphdef: nnx.GraphDef, heads: tuple[tuple[str, str], ...]) -> Callable:
    """One jitted forward pass per network structure, shared by every loaded model."""

    def forward(state: nnx.State, x, station, center, scale, noise):  # type: ignore[no-untyped-def]
        return predictive(nnx.merge(graphdef, state), dict(heads), x, station, center, scale, noise)

    return jax.jit(forward)


class TrainedModel:
    """Trained seed networks with their feature spec: predictive distributions of a table.

    Several seed networks are pooled per ``config.predict.combine``
    (:mod:`probcast.dists.pooling`); generative heads always pool by mixing members.
    ``spread_factor`` (target -> factor, :mod:`probcast.train.calibrate`) multiplies the
    scale parameter of every network's distribution of that target.
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        spec: FeatureSpec,
        heads: Mapping[str, str],
        networks: Sequence[nnx.Module],
        meta: Mapping[str, Any],
        spread_factor: Mapping[str, float] | None = None,
        blend: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        from probcast.dists.pooling import check_combine

        self.config, self.spec, self.heads = config, spec, dict(heads)
        self.networks, self.meta = list(networks), dict(meta)
        self.combine = check_combine(str(config.predict.combine))
        graphdef, _ = nnx.split(self.networks[0])
        self._states = [nnx.split(n)[1] for n in self.networks]
        self._noise_dim = int(getattr(self.networks[0], "noise_dim", 0))
        self._forward = _compiled_forward(graphdef, tuple(self.heads.items()))
        self.spread_factor = dict(spread_factor or {})
        self.blend = dict(blend or {})

    def _call(self, state: nnx.State, batch: Any, noise: jax.Array | None) -> tuple[dict, dict]:
        """One network's forward pass with the spread factors applied."""
        params, members = self._forward(
            state, batch.x, batch.station, batch.center, batch.scale, noise
        )
        from probcast.train.blend import blend_params

        for var, b in self.blend.items():
            params[var] = blend_params(params[var], batch.emos[var], float(b["weight"]))
        for var, k in self.spread_factor.items():
            if var in params and "scale" in params[var] and k != 1.0:
                params[var] = {**params[var], "scale": params[var]["scale"] * k}
        return params, members

    @property
    def targets(self) -> list[str]:
        """Target variables in head order."""
        return list(self.heads)

    @property
    def parametric(self) -> list[str]:
        """Targets with a parametric head."""
        return [v for v, h in self.heads.items() if h != "generative"]

    def _chunks(self, table: pd.DataFrame, members: int) -> list[tuple[int, Batch]]:
        """The table's inputs in row chunks sized to bound memory (about 2**24 members)."""
        from probcast.train.blend import emos_params

        batch = self.spec.transform(table)  # validates every row before any work
        emos = emos_params(self.blend, table) if self.blend else {}
        rows = int(self.config.predict.batch_size)
        rows = max(256, min(rows, 2**24 // max(1, members)))
        fields = ("x", "station", "center", "y", "mask")
        return [
            (
                s,
                dataclasses.replace(
                    batch,
                    emos={v: {k: a[s : s + rows] for k, a in p.items()} for v, p in emos.items()},
                    **{f: getattr(batch, f)[s : s + rows] for f in fields},
                ),
            )
            for s in range(0, len(table), rows)
        ]

    def _run(self, batch: Any, noise: jax.Array | None) -> tuple[list, list]:
        outs = [self._call(st, batch, noise) for st in self._states]
        return [o[0] for o in outs], [o[1] for o in outs]

    def _noise(self, key: jax.Array, n: int, members: int) -> jax.Array:
        return jax.random.normal(key, (n, members, max(1, self._noise_dim)), dtype=jnp.float32)

    def _net_noise(self, noise: jax.Array) -> jax.Array | None:
        return noise[..., : self._noise_dim] if self._noise_dim else None

    def params(self, table: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
        """Distribution parameters of the parametric heads (mean over seed networks)."""
        from probcast.dists.pooling import mean_params

        out: dict[str, list[dict[str, np.ndarray]]] = {v: [] for v in self.parametric}
        for _, batch in self._chunks(table, 1):
            noise = self._net_noise(self._noise(jax.random.key(0), len(batch), 1))
            params, _ = self._run(batch, noise)
            for var in self.parametric:
                pooled = mean_params([p[var] for p in params])
                out[var].append({k: np.asarray(v) for k, v in pooled.items()})
        return {v: _concat_dicts(parts, len(table)) for v, parts in out.items()}

    def sample(self, table: pd.DataFrame, members: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``members`` coherent members per row ``(rows, members)`` for every target.

        One noise draw per (row, member) is shared by all targets: generative heads read it
        directly, parametric heads use its normal CDF as the uniform of an inverse-CDF draw.
        """
        from probcast.dists.pooling import quantile_at

        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        parts: dict[str, list[np.ndarray]] = {v: [] for v in self.heads}
        n_nets = len(self._states)
        which = np.arange(members) % n_nets
        for start, batch in self._chunks(table, members):
            key = jax.random.fold_in(jax.random.key(seed), start)
            noise = self._noise(key, len(batch), members)
            u = jnp.clip(ndtr(noise[..., 0]), 1e-7, 1 - 1e-7)
            # Network s draws members j with j % n_nets == s (mixture); parametric
            # parameters do not depend on the noise.
            runs = [self._run_one(s, batch, noise[:, which == s]) for s in range(n_nets)]
            for var, head in self.heads.items():
                if head != "generative" and self.combine == "vincentize":
                    dist = dists.get(head)
                    params = [r[0][var] for r in runs]
                    parts[var].append(np.asarray(quantile_at(dist, params, u, "vincentize")))
                    continue
                member = np.empty((len(batch), members), dtype=np.float32)
                for s, (p_s, m_s) in enumerate(runs):
                    cols = which == s
                    if head == "generative":
                        member[:, cols] = np.asarray(m_s[var])
                    else:
                        dist = dists.get(head)
                        member[:, cols] = np.asarray(
                            quantile_at(dist, [p_s[var]], u[:, cols], "mixture")
                        )
                parts[var].append(member)
        return {v: _cat(p, members) for v, p in parts.items()}

    def _run_one(self, s: int, batch: Any, noise: jax.Array) -> tuple[dict, dict]:
        return self._call(self._states[s], batch, self._net_noise(noise))

    def quantiles(self, table: pd.DataFrame, qs: Sequence[float]) -> dict[str, np.ndarray]:
        """Quantiles ``(rows, k)`` of every target at levels ``qs`` in (0, 1)."""
        from probcast.dists.pooling import quantile_at

        levels = _levels(qs)
        out: dict[str, list[np.ndarray]] = {v: [] for v in self.heads}
        gen = [v for v in self.heads if v not in self.parametric]
        m = int(self.config.predict.quantile_members)
        for start, batch in self._chunks(table, m if gen else 1):
            noise = self._noise(
                jax.random.fold_in(jax.random.key(0), start), len(batch), m if gen else 1
            )
            params, _ = self._run(batch, self._net_noise(noise[:, :1]))
            for var in self.parametric:
                dist = dists.get(self.heads[var])
                out[var].append(
                    np.asarray(
                        quantile_at(
                            dist, [p[var] for p in params], jnp.asarray(levels), self.combine
                        )
                    )
                )
            if gen:
                ens = self._mixed_members(batch, noise, gen)
                for var in gen:
                    out[var].append(np.quantile(ens[var], levels, axis=-1).T)
        return {v: _cat(p, len(levels)) for v, p in out.items()}

    def exceedance(
        self, table: pd.DataFrame, thresholds: Mapping[str, Sequence[float]]
    ) -> dict[str, np.ndarray]:
        """Probability of exceeding each threshold, ``(rows, k)`` per listed target."""
        from probcast.dists.pooling import exceedance

        unknown = set(thresholds) - set(self.heads)
        if unknown:
            raise ValueError(
                f"thresholds for non-targets {sorted(unknown)}; targets {self.targets}"
            )
        out: dict[str, list[np.ndarray]] = {v: [] for v in thresholds}
        gen = [v for v in thresholds if v not in self.parametric]
        m = int(self.config.predict.quantile_members)
        for start, batch in self._chunks(table, m if gen else 1):
            noise = self._noise(
                jax.random.fold_in(jax.random.key(0), start), len(batch), m if gen else 1
            )
            params, _ = self._run(batch, self._net_noise(noise[:, :1]))
            for var in thresholds:
                t = np.asarray(thresholds[var], dtype=np.float32)
                if var in self.parametric:
                    dist = dists.get(self.heads[var])
                    p = exceedance(dist, [q[var] for q in params], jnp.asarray(t), self.combine)
                    out[var].append(np.asarray(p))
            if gen:
                ens = self._mixed_members(batch, noise, gen)
                for var in gen:
                    t = np.asarray(thresholds[var], dtype=np.float32)
                    out[var].append((ens[var][:, :, None] > t).mean(axis=1))
        return {v: _cat(p, len(thresholds[v])) for v, p in out.items()}

    def _mixed_members(self, batch: Any, noise: jax.Array, gen: list[str]) -> dict[str, np.ndarray]:
        """Generative members, member j from seed network ``j % n_networks``."""
        which = np.arange(noise.shape[1]) % len(self._states)
        out = {v: np.empty((len(batch), noise.shape[1]), dtype=np.float32) for v in gen}
        for s in range(len(self._states)):
            _, ens = self._run_one(s, batch, noise[:, which == s])
            for v in gen:
                out[v][:, which == s] = np.asarray(ens[v])
        return out


def _levels(qs: Sequence[float]) -> np.ndarray:
    levels = np.asarray(list(qs), dtype=np.float32)
    if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
        raise ValueError(f"quantile levels must lie in (0, 1), got {list(qs)}")
    return levels


def _cat(parts: list[np.ndarray], k: int) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, k), dtype=np.float32)


def _concat_dicts(parts: list[dict[str, np.ndarray]], n: int) -> dict[str, np.ndarray]:
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
