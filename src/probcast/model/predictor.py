"""The trained model's predictor: seed networks + calibration + EMOS blend -> ``Predictive``.

:class:`TrainedModel` turns a canonical station table into predictive distributions of every
target: distribution parameters (parametric heads), coherent members, quantiles and
exceedance probabilities, pooling several seed networks (:mod:`probcast.dists.pooling`) and
applying what training fitted after the networks (a spread factor per target, the blend
with local EMOS, a PIT recalibration map). Request-time options (how seed networks are
pooled, batch size, members drawn for a generative head's quantiles) are
:class:`PredictOptions`, not training config.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
from flax import nnx
from jax.scipy.special import ndtr

from probcast import dists
from probcast.baselines.emos import EmosModel
from probcast.dists import is_generative
from probcast.dists._common import LocScaleFamily
from probcast.dists.pooling import (
    blend_params,
    exceedance,
    mean_params,
    quantile_at,
)
from probcast.dists.recalibration import PitMap
from probcast.features import Batch, FeatureSpec
from probcast.model.domain import Domain
from probcast.model.network import predictive
from probcast.model.options import PredictOptions
from probcast.periods import STATISTICS, check_same, unfixed
from probcast.periods import of as periods_of


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """A table's validated network inputs and EMOS-blend parameters (:meth:`TrainedModel.inputs`).

    Pass it instead of the table to predict several products of the same rows without
    transforming them again.
    """

    batch: Batch
    emos: Mapping[str, Mapping[str, np.ndarray]]
    rows: int

    def __len__(self) -> int:
        return self.rows


Rows = pd.DataFrame | ModelInputs
"""A station table, or its :class:`ModelInputs`."""


def emos_params(blend: Mapping[str, Mapping[str, Any]], table: pd.DataFrame) -> dict[str, Any]:
    """Local-EMOS parameters of every blended target for the rows of ``table``."""
    return {var: EmosModel.from_dict(dict(b["emos"])).predict(table) for var, b in blend.items()}


@functools.lru_cache(maxsize=16)
def _compiled_forward(graphdef: nnx.GraphDef, heads: tuple[tuple[str, str], ...]) -> Callable:
    """One jitted forward pass per network structure, shared by every loaded model."""

    def forward(state: nnx.State, x, station, center, scale, noise):  # type: ignore[no-untyped-def]
        return predictive(nnx.merge(graphdef, state), dict(heads), x, station, center, scale, noise)

    return jax.jit(forward)


class TrainedModel:
    """Trained seed networks with their feature spec: predictive distributions of a table.

    Several seed networks are pooled per ``options.combine``
    (:mod:`probcast.dists.pooling`); generative heads always pool by mixing members.
    ``spread_factor`` (target -> factor, :mod:`probcast.train.calibrate`) multiplies the
    scale parameter of every network's distribution of that target; ``blend`` (target ->
    weight and EMOS coefficients, :mod:`probcast.train.blend`) pools it with local EMOS;
    ``recalibration`` (target -> :class:`PitMap`, :mod:`probcast.train.recalibrate`) turns
    the pooled CDF ``F`` into ``G(F)`` for members, quantiles and probabilities.
    ``domain`` is the training domain (:mod:`probcast.model.domain`; ``None`` for models
    trained before it was recorded).
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
        options: PredictOptions | None = None,
        domain: Domain | None = None,
        recalibration: Mapping[str, PitMap] | None = None,
    ) -> None:
        self.config, self.spec, self.heads = config, spec, dict(heads)
        self.domain = domain
        self.networks, self.meta = list(networks), dict(meta)
        self.options = options or PredictOptions()
        graphdef, _ = nnx.split(self.networks[0])
        self._states = [nnx.split(n)[1] for n in self.networks]
        self._noise_dim = int(getattr(self.networks[0], "noise_dim", 0))
        self._forward = _compiled_forward(graphdef, tuple(self.heads.items()))
        self.spread_factor = dict(spread_factor or {})
        self.blend = dict(blend or {})
        self.recalibration = dict(recalibration or {})

    def with_options(self, options: PredictOptions) -> TrainedModel:
        """The same model (networks shared, nothing recompiled) with other options."""
        out = object.__new__(TrainedModel)
        out.__dict__.update(self.__dict__)
        out.options = options
        return out

    def subset(self, indices: Sequence[int]) -> TrainedModel:
        """The same model with only networks ``indices`` (e.g. one cross-validation fold's)."""
        out = object.__new__(TrainedModel)
        out.__dict__.update(self.__dict__)
        out.networks = [self.networks[i] for i in indices]
        out._states = [self._states[i] for i in indices]
        return out

    @property
    def combine(self) -> str:
        """How seed networks are pooled."""
        return self.options.combine

    def _call(self, state: nnx.State, batch: Any, noise: jax.Array | None) -> tuple[dict, dict]:
        """One network's forward pass with the spread factors applied."""
        params, members = self._forward(
            state, batch.x, batch.station, batch.center, batch.scale, noise
        )
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
    def periods(self) -> dict[str, float]:
        """Hours that its targets ``tp``/``tmax``/``tmin`` cover (:mod:`probcast.periods`).

        Only those the training data recorded; empty for a model without a domain.
        """
        known = self.domain.periods if self.domain is not None else {}
        return {v: float(h) for v, h in known.items() if v in self.heads}

    def check_periods(self, data: Any, where: str) -> None:
        """Refuse input (a table or Dataset) of other periods than the model's.

        Every variable the model uses counts: its targets and the variables of its
        ``fc_*`` predictors (a 6-h ``fc_tp`` predictor fed 24-h amounts is as wrong).

        Raises:
            ValueError: Naming ``where``, the variable and both periods, or why the input's
                variable has no fixed period.
        """
        used = self.statistics_used
        for var, why in unfixed(data.attrs, where).items():
            if var in used:
                raise ValueError(f"{where}: {var} is {why}")
        known = self.domain.periods if self.domain is not None else {}
        check_same(known, periods_of(data.attrs, where), sorted(used), where)

    @property
    def statistics_used(self) -> set[str]:
        """The statistics over a period the model uses: as targets or ``fc_*`` predictors."""
        cols = self.spec.columns
        return {v for v in self.targets if v in STATISTICS} | {
            v for v in STATISTICS for c in cols if c == f"fc_{v}" or c.startswith(f"fc_{v}_")
        }

    def pooled_params_are_predictive(self, var: str) -> bool:
        """Whether :meth:`params` of ``var`` is its predictive distribution.

        True for a parametric head of one network, or several pooled by quantile averaging
        of a location-scale family (the pool is the family with averaged parameters);
        false otherwise (a mixture, or other families), whose parameters are only the mean,
        and for a recalibrated target (its forecast is ``G(F)``, not the family).
        """
        if is_generative(self.heads[var]) or var in self.recalibration:
            return False
        locscale = isinstance(dists.get(self.heads[var]), LocScaleFamily)
        return len(self._states) == 1 or (self.combine == "vincentize" and locscale)

    @property
    def parametric(self) -> list[str]:
        """Targets with a parametric head."""
        return [v for v, h in self.heads.items() if not is_generative(h)]

    def inputs(self, table: pd.DataFrame) -> ModelInputs:
        """Validate and transform ``table`` once, for several calls on the same rows."""
        batch = self.spec.transform(table)  # validates every row before any work
        emos = emos_params(self.blend, table) if self.blend else {}
        return ModelInputs(batch, emos, len(table))

    def _chunks(self, table: Rows, members: int) -> list[tuple[int, Batch]]:
        """The table's inputs in row chunks sized to bound memory (about 2**24 members)."""
        prepared = table if isinstance(table, ModelInputs) else self.inputs(table)
        batch, emos = prepared.batch, prepared.emos
        rows = int(self.options.batch_size)
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
            for s in range(0, len(prepared), rows)
        ]

    def _run(self, batch: Any, noise: jax.Array | None) -> tuple[list, list]:
        outs = [self._call(st, batch, noise) for st in self._states]
        return [o[0] for o in outs], [o[1] for o in outs]

    def _noise(self, key: jax.Array, n: int, members: int) -> jax.Array:
        return jax.random.normal(key, (n, members, max(1, self._noise_dim)), dtype=jnp.float32)

    def _net_noise(self, noise: jax.Array) -> jax.Array | None:
        return noise[..., : self._noise_dim] if self._noise_dim else None

    def params(self, table: Rows) -> dict[str, dict[str, np.ndarray]]:
        """Distribution parameters of the parametric heads (mean over seed networks)."""
        out: dict[str, list[dict[str, np.ndarray]]] = {v: [] for v in self.parametric}
        for _, batch in self._chunks(table, 1):
            noise = self._net_noise(self._noise(jax.random.key(0), len(batch), 1))
            params, _ = self._run(batch, noise)
            for var in self.parametric:
                pooled = mean_params([p[var] for p in params])
                out[var].append({k: np.asarray(v) for k, v in pooled.items()})
        return {v: _concat_dicts(parts, len(table)) for v, parts in out.items()}

    def sample(self, table: Rows, members: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``members`` coherent members per row ``(rows, members)`` for every target.

        One noise draw per (row, member) is shared by all targets: generative heads read it
        directly, parametric heads use its normal CDF as the uniform of an inverse-CDF draw.
        """
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
                recal = self.recalibration.get(var)
                if not is_generative(head) and (self.combine == "vincentize" or recal is not None):
                    # one inverse-CDF draw from the pool, at G^-1(u) where recalibrated
                    dist, params = dists.get(head), [r[0][var] for r in runs]
                    uu = recal.inverse(u) if recal is not None else u
                    parts[var].append(np.asarray(quantile_at(dist, params, uu, self.combine)))
                    continue
                member = np.empty((len(batch), members), dtype=np.float32)
                for s, (p_s, m_s) in enumerate(runs):
                    cols = which == s
                    if is_generative(head):
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

    def quantiles(self, table: Rows, qs: Sequence[float]) -> dict[str, np.ndarray]:
        """Quantiles ``(rows, k)`` of every target at levels ``qs`` in (0, 1)."""
        levels = _levels(qs)
        out: dict[str, list[np.ndarray]] = {v: [] for v in self.heads}
        gen = [v for v in self.heads if v not in self.parametric]
        m = int(self.options.quantile_members)
        for start, batch in self._chunks(table, m if gen else 1):
            noise = self._noise(
                jax.random.fold_in(jax.random.key(0), start), len(batch), m if gen else 1
            )
            params, _ = self._run(batch, self._net_noise(noise[:, :1]))
            for var in self.parametric:
                dist = dists.get(self.heads[var])
                recal = self.recalibration.get(var)
                lv = recal.inverse(levels) if recal is not None else jnp.asarray(levels)
                out[var].append(
                    np.asarray(quantile_at(dist, [p[var] for p in params], lv, self.combine))
                )
            if gen:
                ens = self._mixed_members(batch, noise, gen)
                for var in gen:
                    out[var].append(np.quantile(ens[var], levels, axis=-1).T)
        return {v: _cat(p, len(levels)) for v, p in out.items()}

    def exceedance(
        self, table: Rows, thresholds: Mapping[str, Sequence[float]]
    ) -> dict[str, np.ndarray]:
        """Probability of exceeding each threshold, ``(rows, k)`` per listed target."""
        unknown = set(thresholds) - set(self.heads)
        if unknown:
            raise ValueError(
                f"thresholds for non-targets {sorted(unknown)}; targets {self.targets}"
            )
        out: dict[str, list[np.ndarray]] = {v: [] for v in thresholds}
        gen = [v for v in thresholds if v not in self.parametric]
        m = int(self.options.quantile_members)
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
                    if var in self.recalibration:  # 1 - G(F(t))
                        p = 1.0 - self.recalibration[var](1.0 - p)
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
