"""The training objective: CRPS of every target, jit-compiled steps and evaluation.

Parametric heads use their family's closed-form CRPS; generative heads use the fair
ensemble CRPS of ``m`` noise draws per row (Ferro 2014; unbiased for the CRPS of the
underlying distribution, so ``m`` can stay small). Each target's mean CRPS is divided by
its training error spread, so targets in different units weigh alike in the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from probcast import dists
from probcast.model.network import ProbNet, predictive
from probcast.train.data import DeviceData, take
from probcast.train.optim import make_optimizer

__all__ = ["StepFns", "crps_sums", "make_optimizer", "normalised_loss"]

PyTree = Any


def crps_sums(
    model: ProbNet,
    heads: Mapping[str, str],
    data: DeviceData,
    key: jax.Array,
    members: int,
    train: bool,
) -> tuple[jax.Array, jax.Array]:
    """Sum of CRPS over observed rows and the number of those rows, per target ``(T,)``."""
    noise_key, dropout_key = jax.random.split(key)
    noise = None
    if model.noise_dim:
        shape = (data.x.shape[0], members, model.noise_dim)
        noise = jax.random.normal(noise_key, shape, dtype=jnp.float32)
    params, ens = predictive(
        model,
        heads,
        data.x,
        data.station,
        data.center,
        data.scale,
        noise,
        dropout_key=dropout_key if train else None,
    )
    sums = []
    for j, (var, head) in enumerate(heads.items()):
        y = data.y[:, j]
        if head == "generative":
            crps = dists.crps_ensemble(ens[var], y, fair=True)
        else:
            crps = dists.get(head).crps(params[var], y)
        # `where`, not a product: a masked row must not pass a NaN/inf gradient.
        sums.append(jnp.sum(jnp.where(data.mask[:, j], crps, 0.0)))
    return jnp.stack(sums), jnp.sum(data.mask, axis=0).astype(jnp.float32)


def normalised_loss(sums: jax.Array, counts: jax.Array, scale: jax.Array) -> jax.Array:
    """Mean over targets of (mean CRPS / error spread); targets without data count 0."""
    return jnp.mean(sums / jnp.maximum(counts, 1.0) / scale)


class StepFns:
    """Jit-compiled training and evaluation functions of one network.

    Args:
        graphdef: Static structure of the network (``nnx.split``).
        rest: Non-parameter state of the network (usually empty).
        heads: Target -> family name or ``"generative"``.
        tx: Optax optimiser.
        members: Noise draws per row for generative heads.
    """

    def __init__(
        self,
        graphdef: nnx.GraphDef,
        rest: nnx.State,
        heads: Mapping[str, str],
        tx: optax.GradientTransformation,
        members: int,
    ) -> None:
        self.graphdef, self.rest, self.heads, self.tx = graphdef, rest, dict(heads), tx
        self.members = members
        self.step = jax.jit(self._step, donate_argnums=(0, 1))
        self.epoch_padded = jax.jit(self._epoch_padded, donate_argnums=(0, 1))
        self.evaluate = jax.jit(self._evaluate)

    def model(self, params: nnx.State) -> ProbNet:
        """The network with ``params``."""
        return nnx.merge(self.graphdef, params, self.rest)

    def loss(
        self, params: nnx.State, batch: DeviceData, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Normalised loss and per-target mean CRPS of one training batch."""
        sums, counts = crps_sums(self.model(params), self.heads, batch, key, self.members, True)
        return normalised_loss(sums, counts, batch.scale), sums / jnp.maximum(counts, 1.0)

    def _step(
        self,
        params: nnx.State,
        opt_state: PyTree,
        batch: DeviceData,
        key: jax.Array,
        steps_per_epoch: jax.Array | None = None,
    ) -> tuple[nnx.State, PyTree, jax.Array, jax.Array]:
        grad_fn: Callable = jax.value_and_grad(self.loss, has_aux=True)
        (loss, per_target), grads = grad_fn(params, batch, key)
        extra = {} if steps_per_epoch is None else {"steps_per_epoch": steps_per_epoch}
        updates, opt_state = self.tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state, loss, per_target

    def _epoch_padded(
        self,
        params: nnx.State,
        opt_state: PyTree,
        data: DeviceData,
        idx: jax.Array,
        key: jax.Array,
        steps: jax.Array,
        per_epoch: jax.Array | None = None,
    ) -> tuple[nnx.State, PyTree, jax.Array, jax.Array]:
        """The first ``steps`` rows of ``idx`` as ``steps`` training steps, in one loop.

        ``data`` and ``idx`` may be padded (rows never indexed, steps never run), and
        ``steps`` is traced: the networks of every fold and of the refit, and every chunk
        of a streamed epoch, share one compiled function. Step ``i`` draws its key from
        ``jax.random.split(key, len(idx))[i]``; the learning-rate schedule
        (``steps_per_epoch``, see :mod:`probcast.train.optim`; the optimiser must come
        from :func:`make_optimizer`) is that of epochs of ``per_epoch`` steps (default
        ``steps``: an epoch in one call; a streamed epoch passes its whole step count with
        each chunk).

        Returns:
            Parameters, optimiser state, and the mean loss and per-target CRPS of the
            steps run.
        """
        keys = jax.random.split(key, idx.shape[0])  # a prefix of it for fewer steps
        n_heads = len(self.heads)
        # jnp.asarray: outside jit (JAX_DEBUG_NANS replays the function op by op) they are ints
        schedule = jnp.asarray(steps if per_epoch is None else per_epoch, jnp.float32)

        def body(i: jax.Array, carry: tuple) -> tuple:
            p, o, loss_sum, per_sum = carry
            batch = take(data, idx[i])
            p, o, loss, per = self._step(p, o, batch, keys[i], schedule)
            return p, o, loss_sum + loss.astype(jnp.float32), per_sum + per.astype(jnp.float32)

        zero = (jnp.zeros((), jnp.float32), jnp.zeros((n_heads,), jnp.float32))
        params, opt_state, loss_sum, per_sum = jax.lax.fori_loop(
            0, steps, body, (params, opt_state, *zero)
        )
        n = jnp.asarray(jnp.maximum(steps, 1), jnp.float32)
        return params, opt_state, loss_sum / n, per_sum / n

    def _evaluate(
        self, params: nnx.State, data: DeviceData, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return crps_sums(self.model(params), self.heads, data, key, self.members, False)
