"""The shared MLP trunk of the network and its activation functions."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nnx.relu,
    "gelu": nnx.gelu,
    "silu": nnx.silu,
    "tanh": jnp.tanh,
    "elu": nnx.elu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the activation function called ``name``."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


class Trunk(nnx.Module):
    """MLP with optional layer norm, dropout and residual connections between hidden layers."""

    def __init__(
        self,
        n_in: int,
        hidden: int,
        n_layers: int,
        *,
        act: str,
        dropout: float,
        layer_norm: bool,
        residual: bool,
        dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        if n_layers < 1:
            raise ValueError(f"model.n_layers must be >= 1, got {n_layers}")
        sizes = [n_in] + [hidden] * n_layers
        self.layers = nnx.List(
            [nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.norms = nnx.List(
            [
                nnx.LayerNorm(hidden, dtype=dtype, rngs=rngs)
                for _ in range(n_layers if layer_norm else 0)
            ]
        )
        self.dropout = nnx.Dropout(dropout)
        self.act = act
        self.residual = residual

    def __call__(self, h: jax.Array, dropout_key: jax.Array | None) -> jax.Array:
        """Apply the MLP; dropout is active only when ``dropout_key`` is given."""
        act = activation(self.act)
        for i, layer in enumerate(self.layers):
            out = layer(h)
            if len(self.norms):
                out = self.norms[i](out)
            out = act(out)
            if dropout_key is not None:
                out = self.dropout(
                    out, deterministic=False, rngs=jax.random.fold_in(dropout_key, i)
                )
            h = h + out if (self.residual and i > 0) else out
        return h
