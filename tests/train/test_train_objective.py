"""Training step invariants: weights move, loss falls, one batch can be overfit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from probcast.configs import tiny
from probcast.features import FeatureSpec
from probcast.model.network import build_model
from probcast.testing.stations import station_table
from probcast.train import data as tdata
from probcast.train.objective import StepFns, make_optimizer

HEADS = {"t2m": "normal", "tp": "generative"}


@pytest.fixture(scope="module")
def setup():
    config = tiny.get_config()
    config.train.learning_rate = 1e-2
    config.train.epochs = 1000
    table = station_table(n_stations=3, n_inits=12)
    spec = FeatureSpec.fit(table, ["t2m", "tp"])
    data = tdata.to_device(spec.transform(table))
    model = build_model(spec.n_features, spec.n_stations, HEADS, config.model, seed=0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, _ = make_optimizer(config.train, steps_per_epoch=1)
    fns = StepFns(graphdef, rest, HEADS, tx, members=4)
    batch = tdata.take(data, jnp.arange(32))
    return fns, params, batch, data


def _copy(tree):
    return jax.tree.map(jnp.array, tree)


def _run(fns, params, batch, steps):
    params = _copy(params)
    opt_state = fns.tx.init(params)
    losses = []
    for i in range(steps):
        params, opt_state, loss, _ = fns.step(params, opt_state, batch, jax.random.key(i))
        losses.append(float(loss))
    return params, losses


def test_every_weight_changes_after_one_step(setup):
    fns, params, batch, _ = setup
    new, losses = _run(fns, params, batch, 1)
    assert np.isfinite(losses[0])
    before = nnx.to_flat_state(params)
    after = dict(nnx.to_flat_state(new))
    unchanged = [p for p, v in before if np.array_equal(v.get_value(), after[p].get_value())]
    # Embedding rows of stations absent from the batch may not move; everything else must.
    assert all("embed" in "/".join(map(str, p)) for p in unchanged), unchanged


def test_loss_decreases_and_single_batch_overfits(setup):
    fns, params, batch, _ = setup
    _, losses = _run(fns, params, batch, 150)
    assert np.mean(losses[-10:]) < np.mean(losses[:5])
    assert np.mean(losses[-10:]) < 0.6 * losses[0], (losses[0], losses[-10:])


def test_same_seed_same_params(setup):
    fns, params, batch, _ = setup
    a, _ = _run(fns, params, batch, 3)
    b, _ = _run(fns, params, batch, 3)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_masked_targets_do_not_leak_nan(setup):
    fns, params, batch, _ = setup
    mask = batch.mask.at[:, 1].set(False)
    y = batch.y.at[:, 1].set(0.0)
    masked = tdata.DeviceData(batch.x, batch.station, batch.center, batch.scale, y, mask)
    grad_fn = jax.jit(jax.value_and_grad(fns.loss, has_aux=True))
    (loss, per), grads = grad_fn(params, masked, jax.random.key(0))
    assert np.isfinite(float(loss)) and float(per[1]) == 0.0
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_epoch_indices_cover_every_row():
    idx = tdata.epoch_indices((0, 3), 10, 4)
    assert idx.shape == (3, 4)
    assert set(idx.ravel()) == set(range(10))
    np.testing.assert_array_equal(idx, tdata.epoch_indices((0, 3), 10, 4))  # seeded
    assert not np.array_equal(idx, tdata.epoch_indices((0, 4), 10, 4))  # another epoch
    padded = np.asarray(tdata.padded_indices((0, 3), 10, 4, 5))
    np.testing.assert_array_equal(padded[:3], idx)
    assert (padded[3:] == 0).all()
