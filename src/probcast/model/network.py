"""Multi-task network: station embedding + shared MLP trunk + one head per target.

A parametric head maps the trunk output to the raw parameters of its distribution family
(``Distribution.constrain`` turns them into valid parameters around the raw forecast). A
generative head maps the trunk output and a noise vector ``z ~ N(0, I_k)`` to one raw value
per noise draw; :func:`generative_members` turns those into ensemble members. The noise of a
row is shared by every generative head, so members are coherent across variables. With
several targets, a target's own features (its recent error) bypass the trunk and enter only
its head (:mod:`probcast.model.routing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from probcast import dists
from probcast.dists import is_generative
from probcast.model.routing import OwnTerm, split_columns, with_own
from probcast.model.trunk import Trunk, activation
from probcast.schema import VARIABLES


class GenerativeHead(nnx.Module):
    """Noise-conditioned head: ``(h (..., H), z (..., m, k)) -> raw members (..., m)``."""

    def __init__(
        self, n_in: int, noise_dim: int, hidden: int, *, act: str, dtype: Any, rngs: nnx.Rngs
    ) -> None:
        self.from_h = nnx.Linear(n_in, hidden, dtype=dtype, rngs=rngs)
        self.from_z = (
            nnx.Linear(noise_dim, hidden, use_bias=False, dtype=dtype, rngs=rngs)
            if noise_dim
            else None
        )
        init = nnx.initializers.normal(1e-2)
        self.out = nnx.Linear(hidden, 1, kernel_init=init, dtype=dtype, rngs=rngs)
        self.act = act

    def __call__(self, h: jax.Array, z: jax.Array | None) -> jax.Array:
        """Return raw member values, members on the last axis."""
        a = self.from_h(h)
        if h.ndim == 2:  # noise enters here: (n, H) -> (n, m, hidden)
            if z is None or self.from_z is None:
                raise ValueError("a generative head fed by a noise-free trunk needs noise z")
            a = a[:, None, :] + self.from_z(z)
        return self.out(activation(self.act)(a))[..., 0]


class ProbNet(nnx.Module):
    """The multi-task probabilistic network.

    Args:
        n_features: Width of the standardised feature vector.
        n_stations: Station embedding table size (index 0 = unknown station).
        heads: Target variable -> distribution family name, or
            :data:`probcast.dists.GENERATIVE` for a noise-conditioned generative head.
        embed_dim: Station embedding size; 0 disables the embedding.
        hidden: Trunk width.
        n_layers: Trunk depth.
        activation: Activation name (``relu``, ``gelu``, ``silu``, ``tanh``, ``elu``).
        dropout: Dropout rate in the trunk.
        layer_norm: Layer norm before each trunk activation.
        residual: Residual connections between hidden trunk layers.
        noise_dim: Size ``k`` of the noise vector of generative heads.
        noise_to: ``"heads"`` (noise enters each generative head; parametric heads stay
            deterministic) or ``"trunk"`` (noise is concatenated to the trunk input; every
            head must be generative).
        head_hidden: Hidden width of generative heads.
        linear_skip: Add to each parametric head a linear function of the features
            (zero at initialisation): the head is an EMOS-like linear model of the
            predictors plus the trunk's nonlinear correction.
        private: Target -> positions in ``x`` of its own features (its recent error):
            with several targets they enter that target's head only, not the shared trunk
            (:mod:`probcast.model.routing`).
        dtype: Compute dtype (parameters are always float32).
        rngs: Flax random streams for initialisation.
    """

    def __init__(
        self,
        n_features: int,
        n_stations: int,
        heads: Mapping[str, str],
        *,
        embed_dim: int = 8,
        hidden: int = 128,
        n_layers: int = 2,
        activation: str = "gelu",
        dropout: float = 0.0,
        layer_norm: bool = False,
        residual: bool = True,
        noise_dim: int = 8,
        noise_to: str = "heads",
        head_hidden: int = 64,
        linear_skip: bool = False,
        private: Mapping[str, Sequence[int]] | None = None,
        dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if noise_to not in ("heads", "trunk"):
            raise ValueError(f"model.noise_to must be 'heads' or 'trunk', got {noise_to!r}")
        generative = [v for v, h in heads.items() if is_generative(h)]
        if noise_to == "trunk" and len(generative) != len(heads):
            raise ValueError("model.noise_to='trunk' needs every target to be generative")
        if generative and noise_dim < 1:
            raise ValueError(f"generative heads need model.noise_dim >= 1, got {noise_dim}")
        self.head_kinds = tuple(heads.items())  # hashable: part of the static graphdef
        sizes = {
            v: 0 if is_generative(h) else len(dists.get(h).param_names) for v, h in heads.items()
        }
        self.noise_dim = noise_dim if generative else 0
        self.noise_to = noise_to
        # static (part of the graphdef): the trunk's columns and each head's own columns
        self.shared, own = split_columns(private, list(heads), n_features)
        self.own = tuple(own.items())
        self.embed = nnx.Embed(n_stations, embed_dim, dtype=dtype, rngs=rngs) if embed_dim else None
        n_in = len(self.shared) + embed_dim + (self.noise_dim if noise_to == "trunk" else 0)
        self.trunk = Trunk(
            n_in,
            hidden,
            n_layers,
            act=activation,
            dropout=dropout,
            layer_norm=layer_norm,
            residual=residual,
            dtype=dtype,
            rngs=rngs,
        )
        zeros = nnx.initializers.zeros_init()  # raw = 0: the family's default around the centre
        self.heads = nnx.Dict(
            {
                var: (
                    GenerativeHead(
                        hidden + len(own.get(var, ())),  # its own columns: extra inputs
                        noise_dim,
                        head_hidden,
                        act=activation,
                        dtype=dtype,
                        rngs=rngs,
                    )
                    if var in generative
                    else nnx.Linear(hidden, sizes[var], kernel_init=zeros, dtype=dtype, rngs=rngs)
                )
                for var in heads
            }
        )
        self.own_terms = nnx.Dict(  # parametric heads: own columns with trunk-set coefficients
            {
                v: OwnTerm(hidden, sizes[v], c, dtype=dtype, rngs=rngs)
                for v, c in own.items()
                if v not in generative
            }
        )
        self.skips = nnx.Dict(
            {
                var: nnx.Linear(len(self.shared), n, kernel_init=zeros, dtype=dtype, rngs=rngs)
                for var, n in sizes.items()
                if linear_skip and var not in generative
            }
        )

    @property
    def generative(self) -> list[str]:
        """Variables with a generative head."""
        return [v for v, h in self.head_kinds if is_generative(h)]

    def __call__(
        self,
        x: jax.Array,
        station: jax.Array,
        noise: jax.Array | None = None,
        *,
        dropout_key: jax.Array | None = None,
    ) -> dict[str, jax.Array]:
        """Raw outputs per target.

        Args:
            x: Features ``(n, f)``.
            station: Station indices ``(n,)``.
            noise: ``(n, m, k)`` standard normal draws; needed with generative heads.
            dropout_key: PRNG key enabling dropout (training); ``None`` = deterministic.

        Returns:
            Target -> raw parameters ``(n, n_params)`` (float32) or raw members ``(n, m)``.
        """
        x = x.astype(self.trunk.layers[0].dtype or jnp.float32)
        h = x_in = x[:, jnp.asarray(self.shared, dtype=jnp.int32)] if self.own else x
        if self.embed is not None:
            h = jnp.concatenate([h, self.embed(station).astype(h.dtype)], axis=-1)
        if self.noise_to == "trunk" and self.noise_dim:
            if noise is None:
                raise ValueError("noise is required: the trunk of this model is noise-fed")
            m = noise.shape[1]
            h = jnp.concatenate(
                [
                    jnp.broadcast_to(h[:, None, :], (*h.shape[:1], m, h.shape[-1])),
                    noise.astype(h.dtype),
                ],
                axis=-1,
            )
        h = self.trunk(h, dropout_key)
        own = dict(self.own)
        out = {}
        for var, head in self.heads.items():
            if isinstance(head, GenerativeHead):
                h_var = with_own(h, x, own.get(var, ()))
                out[var] = head(h_var, None if noise is None else noise.astype(h.dtype))
            else:
                out[var] = head(h)
                if var in self.own_terms:
                    out[var] = out[var] + self.own_terms[var](h, x)
                if var in self.skips:
                    out[var] = out[var] + self.skips[var](x_in)
            out[var] = out[var].astype(jnp.float32)
        return out


def generative_members(raw: jax.Array, center: jax.Array, scale: jax.Array, var: str) -> jax.Array:
    """Map raw generative outputs ``(n, m)`` to members in physical units.

    Members are ``center + scale * raw`` projected onto the variable's support: clipped at 0
    for non-negative variables (a point mass at zero, as for precipitation) and to [0, 1] for
    fractions.
    """
    members = center[:, None] + scale * raw
    kind = VARIABLES[var].kind if var in VARIABLES else "real"
    if kind in ("nonneg", "positive"):
        return jnp.maximum(members, 0.0)
    if kind == "fraction":
        return jnp.clip(members, 0.0, 1.0)
    return members


def head_families(targets: list[str], model_config: Any) -> dict[str, str]:
    """Head of each target: a distribution family name, or :data:`probcast.dists.GENERATIVE`.

    Args:
        targets: Target variables.
        model_config: ``config.model``: ``generative`` (comma list or ``"all"``) and
            ``distributions`` (``"var:family,..."`` overrides of the per-variable default).
    """
    gen = {v.strip() for v in str(model_config.generative).split(",") if v.strip()}
    if "all" in gen:
        gen = set(targets)
    unknown = gen - set(targets)
    if unknown:
        raise ValueError(f"model.generative names non-targets {sorted(unknown)}; targets {targets}")
    overrides: dict[str, str] = {}
    for item in str(model_config.distributions).split(","):
        if item.strip():
            var, sep, name = item.partition(":")
            if not sep:
                raise ValueError(f"model.distributions items are 'var:family', got {item!r}")
            if var.strip() in overrides:
                raise ValueError(f"model.distributions names {var.strip()!r} twice")
            overrides[var.strip()] = name.strip()
    strays = sorted(set(overrides) - set(targets))
    if strays:  # a typo (tmx:logistic) would otherwise train the default family silently
        raise ValueError(f"model.distributions names non-targets {strays}; targets {targets}")
    clash = sorted(set(overrides) & gen)
    if clash:
        raise ValueError(f"model.distributions gives generative targets {clash} a family")
    if str(model_config.get("noise_to", "heads")) == "trunk" and gen != set(targets):
        raise ValueError("model.noise_to='trunk' needs every target to be generative")
    heads = {}
    for var in targets:
        if var in gen:
            heads[var] = dists.GENERATIVE
        else:
            try:
                name = overrides.get(var) or dists.default_for(var)
            except KeyError as err:  # a variable without a default family
                raise ValueError(
                    f"target {var!r}: {err.args[0]}; train the others with --config.data."
                    f"targets, or give {var} a family (--config.model.distributions={var}:normal)"
                ) from None
            dists.get(name)  # fail early on an unknown family
            heads[var] = name
    return heads


def build_model(
    n_features: int,
    n_stations: int,
    heads: Mapping[str, str],
    model_config: Any,
    *,
    seed: int,
    dtype: Any = jnp.float32,
    private: Mapping[str, Sequence[int]] | None = None,
) -> ProbNet:
    """Construct a :class:`ProbNet` from the ``config.model`` section.

    ``private``: each target's own feature columns
    (:meth:`probcast.features.FeatureSpec.own_features`), routed to that target's head
    alone when ``model.recent_errors_to`` is ``"heads"`` (a configuration without the key,
    from before it existed, means ``"trunk"``: every feature enters the shared trunk).
    """
    route = str(model_config.get("recent_errors_to", "trunk"))
    if route not in ("heads", "trunk"):
        raise ValueError(f"model.recent_errors_to must be 'heads' or 'trunk', got {route!r}")
    return ProbNet(
        n_features,
        n_stations,
        heads,
        embed_dim=int(model_config.embed_dim),
        hidden=int(model_config.hidden),
        n_layers=int(model_config.n_layers),
        activation=str(model_config.activation),
        dropout=float(model_config.dropout),
        layer_norm=bool(model_config.layer_norm),
        residual=bool(model_config.residual),
        noise_dim=int(model_config.noise_dim),
        noise_to=str(model_config.noise_to),
        head_hidden=int(model_config.head_hidden),
        linear_skip=bool(model_config.linear_skip),
        private=private if route == "heads" else None,
        dtype=dtype,
        rngs=nnx.Rngs(seed),
    )


def predictive(
    model: ProbNet,
    heads: Mapping[str, str],
    x: jax.Array,
    station: jax.Array,
    center: jax.Array,
    scale: jax.Array,
    noise: jax.Array | None = None,
    *,
    dropout_key: jax.Array | None = None,
) -> tuple[dict[str, dict[str, jax.Array]], dict[str, jax.Array]]:
    """Predictive distributions of every target.

    Args:
        model: The network.
        heads: Target -> family name or ``GENERATIVE`` (target order = columns of
            ``center``).
        x: Features ``(n, f)``.
        station: Station indices ``(n,)``.
        center: Raw forecasts ``(n, T)``.
        scale: Error spread per target ``(T,)``.
        noise: ``(n, m, k)`` normal draws (generative heads only).
        dropout_key: Enables dropout (training).

    Returns:
        ``(params, members)``: distribution parameters of the parametric heads and
        ``(n, m)`` members of the generative heads, in physical units.
    """
    raw = model(x, station, noise, dropout_key=dropout_key)
    params: dict[str, dict[str, jax.Array]] = {}
    members: dict[str, jax.Array] = {}
    for j, (var, head) in enumerate(heads.items()):
        if is_generative(head):
            members[var] = generative_members(raw[var], center[:, j], scale[j], var)
        else:
            params[var] = dists.get(head).constrain(raw[var], center[:, j], scale[j])
    return params, members
