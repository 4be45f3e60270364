"""Shared data of the EMOS kernel tests."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probcast import dists

Rows = Callable[..., tuple[jax.Array, ...]]


def _truncation_rows(
    family: str, n: int, seed: int, *, lo_max: float, raw_sd: float = 1.0, y_in_scale: bool = False
) -> tuple[jax.Array, ...]:
    """``(raw (n, 2), center, y)`` with standardised truncation points ``l`` in -5..``lo_max``.

    40 % of the observations are 0; the others are gamma draws, times the row's scale when
    ``y_in_scale``.
    """
    rng = np.random.default_rng(seed)
    center = rng.gamma(0.6, 3.0, n)
    raw1 = rng.normal(0.0, raw_sd, n)
    with jax.enable_x64(True):
        zeros = jnp.zeros(n)
        raw = jnp.stack([zeros, jnp.asarray(raw1)], -1)
        scale = np.asarray(dists.get(family).constrain(raw, zeros, 1.3)["scale"])
        lo = rng.uniform(-5.0, lo_max, n)
        raw0 = (-lo * scale - center) / 1.3
        dry = rng.random(n) < 0.4
        y = np.where(dry, 0.0, rng.gamma(1.0, 2.0, n) * (scale if y_in_scale else 1.0))
        return tuple(jnp.asarray(a) for a in (np.stack([raw0, raw1], -1), center, y))


@pytest.fixture
def truncation_rows() -> Rows:
    """:func:`_truncation_rows`: EMOS rows across the truncated normal's regimes."""
    return _truncation_rows
