"""The optimiser: AdamW along a warmup + cosine schedule measured in epochs.

The learning-rate schedule is the one of ``optax.warmup_cosine_decay_schedule`` (or
``optax.cosine_decay_schedule`` without warmup) over ``train.epochs`` epochs, but the number
of steps per epoch is an argument of the update (``steps_per_epoch=``, an optax "extra
argument") instead of a constant closed over when the optimiser is built. The networks of
every cross-validation fold and of the refit, whose epochs have different step counts, then
share one optimiser and so one compiled epoch (:meth:`probcast.train.objective.StepFns.
epoch_padded`). Without the argument the update uses the step count given to
:func:`make_optimizer`. The optimiser state has the structure of
``chain(clip_by_global_norm, adamw(schedule))``, so checkpoints of either load in the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

Schedule = Callable[[Any, Any], jax.Array]
"""``(count, steps_per_epoch) -> learning rate``."""


def epoch_schedule(train: Any) -> Schedule:
    """The learning rate at optimiser step ``count`` for epochs of ``steps_per_epoch`` steps.

    Warmup from ``0.1 * lr`` to ``lr`` over ``train.warmup_epochs`` epochs (at most all
    steps but one), then cosine decay to ``lr * train.end_lr_factor`` at the end of
    ``train.epochs`` epochs; the formulas of optax's schedules, with a traced step count.
    """
    lr = float(train.learning_rate)
    alpha = float(train.end_lr_factor)
    epochs, warmup_epochs = int(train.epochs), int(train.warmup_epochs)

    def cosine(count: jax.Array, steps: jax.Array, peak: float, a: float) -> jax.Array:
        count = jnp.minimum(count, steps)
        return peak * ((1 - a) * 0.5 * (1 + jnp.cos(jnp.pi * count / steps)) + a)

    def schedule(count: Any, steps_per_epoch: Any) -> jax.Array:
        count = jnp.asarray(count, jnp.float32)
        total = jnp.maximum(1.0, epochs * jnp.asarray(steps_per_epoch, jnp.float32))
        if warmup_epochs <= 0:
            return cosine(count, total, lr, alpha)
        warmup = jnp.minimum(warmup_epochs * jnp.asarray(steps_per_epoch, jnp.float32), total - 1)
        frac = 1 - jnp.clip(count, 0, warmup) / jnp.maximum(warmup, 1.0)
        linear = (0.1 * lr - lr) * frac + lr
        decay = cosine(count - warmup, jnp.maximum(total - warmup, 1.0), lr, alpha)
        warm = jnp.where(count < warmup, linear, decay)
        return jnp.where(warmup > 0, warm, cosine(count, total, lr, alpha))

    return schedule


def scale_by_epoch_schedule(
    schedule: Schedule, steps_per_epoch: int
) -> optax.GradientTransformationExtraArgs:
    """``optax.scale_by_learning_rate`` for a :data:`Schedule` (state: the step count).

    ``update(..., steps_per_epoch=s)`` evaluates the schedule for epochs of ``s`` steps
    (a traced value is fine); without it, for ``steps_per_epoch``.
    """

    def init(params: Any) -> optax.ScaleByScheduleState:
        del params
        return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update(
        updates: Any, state: optax.ScaleByScheduleState, params: Any = None, **extra: Any
    ) -> tuple[Any, optax.ScaleByScheduleState]:
        del params
        steps = extra.get("steps_per_epoch")
        rate = schedule(state.count, steps_per_epoch if steps is None else steps)
        updates = jax.tree.map(lambda u: jnp.array(-rate, dtype=u.dtype) * u, updates)
        return updates, optax.ScaleByScheduleState(count=optax.safe_int32_increment(state.count))

    return optax.GradientTransformationExtraArgs(init, update)


def make_optimizer(
    train: Any, steps_per_epoch: int
) -> tuple[optax.GradientTransformationExtraArgs, optax.Schedule]:
    """AdamW with warmup + cosine decay and global-norm gradient clipping.

    Returns:
        ``(tx, schedule)``: the optimiser (accepting ``steps_per_epoch=`` in its update) and
        the learning rate by step count for ``steps_per_epoch`` steps per epoch (logging).
    """
    schedule = epoch_schedule(train)
    tx = optax.chain(
        optax.clip_by_global_norm(float(train.grad_clip)),
        optax.chain(  # the structure of optax.adamw
            optax.scale_by_adam(),
            optax.add_decayed_weights(float(train.weight_decay)),
            scale_by_epoch_schedule(schedule, steps_per_epoch),
        ),
    )
    return tx, lambda count: schedule(count, steps_per_epoch)
