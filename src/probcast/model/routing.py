"""Which features enter the shared trunk and which only one target's head.

A feature that describes one target alone (its recent error ``err_<var>`` and the error's
missing indicator, :meth:`probcast.features.FeatureSpec.own_features`) is, in a network with
several targets, kept out of the shared trunk and fed to that target's head only: through
the trunk, one variable's recent error would reach every other variable's forecast, and on
thin training data the network learns spurious cross-variable links from it (issue 12).
A parametric head adds :class:`OwnTerm` (coefficients that depend on the trunk output); a
generative head takes its own columns as extra inputs (:func:`with_own`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def split_columns(
    private: Mapping[str, Sequence[int]] | None, targets: list[str], n_features: int
) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
    """The trunk's feature columns and each target's own (head-only) columns.

    Args:
        private: Target -> positions of its own features in ``x`` (``None``: none).
        targets: The network's targets; with fewer than two, every feature enters the
            trunk (the trunk serves that one head alone).
        n_features: Width of ``x``.

    Returns:
        ``(shared, own)``: the columns fed to the trunk, in order, and target -> its own
        columns (targets without any left out).

    Raises:
        ValueError: If a position repeats or is out of range, or a key is not a target.
    """
    if not private or len(targets) < 2:
        return tuple(range(n_features)), {}
    own = {v: tuple(int(i) for i in private.get(v, ())) for v in targets}
    cols = [i for c in own.values() for i in c]
    if len(set(cols)) != len(cols) or any(not 0 <= i < n_features for i in cols):
        raise ValueError(
            f"private feature columns must be distinct positions in [0, {n_features}): {own}"
        )
    unknown = set(private) - set(targets)
    if unknown:
        raise ValueError(f"private features name non-targets {sorted(unknown)}; targets {targets}")
    own = {v: c for v, c in own.items() if c}
    return tuple(i for i in range(n_features) if i not in set(cols)), own


def with_own(h: jax.Array, x: jax.Array, cols: Sequence[int]) -> jax.Array:
    """Trunk output ``h`` (``(n, H)`` or ``(n, m, H)``) with a head's own columns of ``x``."""
    if not cols:
        return h
    extra = x[:, jnp.asarray(cols, dtype=jnp.int32)].astype(h.dtype)
    if h.ndim == 3:
        extra = jnp.broadcast_to(extra[:, None, :], (*h.shape[:2], extra.shape[-1]))
    return jnp.concatenate([h, extra], axis=-1)


class OwnTerm(nnx.Module):
    """A parametric head's own-feature term: ``raw += c(h) @ x_own``.

    The coefficients ``c`` of the head's own columns are a linear function of the trunk
    output ``h`` (zero at initialisation), so the weight of, say, the recent error can
    depend on lead time, station and weather (everything the trunk sees) while the error
    itself reaches no other head.
    """

    def __init__(
        self, hidden: int, n_params: int, cols: Sequence[int], *, dtype: Any, rngs: nnx.Rngs
    ) -> None:
        self.cols = tuple(int(i) for i in cols)
        self.n_params = n_params
        zeros = nnx.initializers.zeros_init()
        self.coef = nnx.Linear(
            hidden, n_params * len(self.cols), kernel_init=zeros, dtype=dtype, rngs=rngs
        )

    def __call__(self, h: jax.Array, x: jax.Array) -> jax.Array:
        """The term ``(n, n_params)`` for trunk output ``h (n, H)`` and features ``x (n, f)``."""
        coef = self.coef(h).reshape(*h.shape[:-1], self.n_params, len(self.cols))
        own = x[:, jnp.asarray(self.cols, dtype=jnp.int32)].astype(coef.dtype)
        return jnp.einsum("npk,nk->np", coef, own)
