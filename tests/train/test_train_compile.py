"""Compile once: padded epochs, a step-count argument for the schedule, vectorised selection.

The networks of every cross-validation fold and of the refit share one compiled epoch; the
padding and the traced step count must not change what is trained.
"""

from __future__ import annotations

import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from probcast.configs import tiny
from probcast.dists.pooling import blend_params
from probcast.features import FeatureSpec
from probcast.model.network import build_model
from probcast.testing.stations import station_table
from probcast.train import data as tdata
from probcast.train.blend import WEIGHTS, choose_weight, weight_scores
from probcast.train.calibrate import mean_crps
from probcast.train.loop import train
from probcast.train.objective import StepFns, make_optimizer

HEADS = {"t2m": "normal", "tp": "generative"}


def _optax_reference(train_cfg, steps_per_epoch):
    """The former optimiser: optax's own schedules, the step count closed over."""
    lr = float(train_cfg.learning_rate)
    total = max(1, int(train_cfg.epochs) * steps_per_epoch)
    warmup = min(int(train_cfg.warmup_epochs) * steps_per_epoch, total - 1)
    end = float(train_cfg.end_lr_factor)
    if warmup > 0:
        schedule = optax.warmup_cosine_decay_schedule(0.1 * lr, lr, warmup, total, lr * end)
    else:
        schedule = optax.cosine_decay_schedule(lr, total, alpha=end)
    adamw = optax.adamw(schedule, weight_decay=float(train_cfg.weight_decay))
    return optax.chain(optax.clip_by_global_norm(float(train_cfg.grad_clip)), adamw), schedule


@pytest.mark.parametrize(("warmup", "epochs", "steps"), [(0, 5, 13), (2, 6, 7), (1, 1, 1)])
def test_optimiser_matches_optax_schedules_for_a_traced_step_count(warmup, epochs, steps):
    cfg = tiny.get_config().train
    cfg.warmup_epochs, cfg.epochs = warmup, epochs
    ref_tx, ref_schedule = _optax_reference(cfg, steps)
    tx, _ = make_optimizer(cfg, steps + 100)  # another default: the argument wins
    counts = range(epochs * steps + 2)
    want = [float(ref_schedule(c)) for c in counts]
    got = [float(make_optimizer(cfg, steps)[1](c)) for c in counts]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    s_ref, s_new = ref_tx.init(params), tx.init(params)
    assert jax.tree.structure(s_ref) == jax.tree.structure(s_new)  # checkpoints interchange
    p_ref = p_new = params
    update = jax.jit(lambda g, s, p, n: tx.update(g, s, p, steps_per_epoch=n))
    for k in range(epochs * steps + 1):
        u, s_ref = ref_tx.update(jax.tree.map(lambda x, k=k: jnp.sin(x * k), p_ref), s_ref, p_ref)
        p_ref = optax.apply_updates(p_ref, u)
        u, s_new = update(jax.tree.map(lambda x, k=k: jnp.sin(x * k), p_new), s_new, p_new, steps)
        p_new = optax.apply_updates(p_new, u)
    np.testing.assert_allclose(p_new["w"], p_ref["w"], rtol=1e-5, atol=1e-7)


def test_padded_epoch_trains_exactly_like_its_steps_one_by_one():
    config = tiny.get_config()
    table = station_table(n_stations=3, n_inits=12)
    spec = FeatureSpec.fit(table, ["t2m", "tp"])
    rows, batch = 100, 16
    steps = -(-rows // batch)
    model = build_model(spec.n_features, spec.n_stations, HEADS, config.model, seed=0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, _ = make_optimizer(config.train, steps)
    fns = StepFns(graphdef, rest, HEADS, tx, members=4)
    batch_data = spec.transform(table.iloc[:rows])
    plain = tdata.to_device(batch_data)
    padded = tdata.to_device(batch_data, pad_to=rows + 77)
    key, order = jax.random.key(1), (2, 0)
    idx = jnp.asarray(tdata.epoch_indices(order, rows, batch))
    # the reference: the bare step, one call per batch, the epoch's keys
    p, o, losses, pers = jax.tree.map(jnp.copy, params), tx.init(params), [], []
    for i, k in enumerate(jax.random.split(key, steps)):
        p, o, loss, per = fns.step(p, o, tdata.take(plain, idx[i]), k)
        losses.append(loss)
        pers.append(per)
    out_plain = (p, o, np.mean(losses), np.mean(pers, axis=0))
    idx_pad = tdata.padded_indices(order, rows, batch, steps + 4)
    assert idx_pad.shape == (steps + 4, batch)
    np.testing.assert_array_equal(idx_pad[:steps], idx)
    out_pad = fns.epoch_padded(
        jax.tree.map(jnp.copy, params), tx.init(params), padded, idx_pad, key, steps
    )
    for a, b in zip(jax.tree.leaves(out_plain[0]), jax.tree.leaves(out_pad[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(out_pad[1][1][2].count) == steps  # padded steps never ran
    np.testing.assert_allclose(out_pad[2], out_plain[2], rtol=1e-5)
    np.testing.assert_allclose(out_pad[3], out_plain[3], rtol=1e-5)
    with jax.disable_jit():  # as JAX_DEBUG_NANS replays it: steps a Python int, not traced
        out_eager = fns.epoch_padded(
            jax.tree.map(jnp.copy, params), tx.init(params), padded, idx_pad, key, steps
        )
    np.testing.assert_allclose(out_eager[2], out_pad[2], rtol=1e-5)


def _compiled(caplog) -> list[str]:
    pattern = re.compile(r"Finished XLA compilation of jit\((\w+)\)")
    return [m[1] for r in caplog.records if (m := pattern.search(r.getMessage()))]


@pytest.mark.parametrize("folds", [3, 0])
def test_folds_and_refit_share_one_compiled_epoch(tmp_path, caplog, folds):
    table = station_table(n_stations=3, n_inits=40, targets=("t2m",), seed=3)
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    cfg = tiny.get_config()
    cfg.data.path = str(path)
    cfg.train.cv_folds = folds
    cfg.train.refit = True
    cfg.train.patience = cfg.train.epochs = 2
    caplog.set_level(logging.INFO)
    with jax.log_compiles(True):
        train(cfg, tmp_path / "run")
    compiled = _compiled(caplog)
    phase = re.compile(r"(?:fold \d+/\d+: fit rows|fit rows|refit on all) (\d+)")
    sizes = {int(m[1]) for r in caplog.records if (m := phase.match(r.getMessage()))}
    assert len(sizes) >= 2, sizes  # networks with different row counts ...
    assert compiled.count("_epoch_padded") == 1, compiled  # ... share one compiled epoch
    assert compiled.count("_evaluate") <= max(1, folds)


def test_vectorised_weight_choice_matches_the_loop_over_weights():
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.normal(0.0, 2.0, n)
    y[::11] = np.nan
    net = {"loc": y + rng.normal(0.0, 1.5, n), "scale": np.full(n, 0.8)}
    emos = {"loc": y + rng.normal(0.3, 1.0, n), "scale": np.full(n, 1.2)}
    emos["loc"][::7] = np.nan  # rows without EMOS keep the network
    got = weight_scores("normal", net, emos, y)
    want = [mean_crps("normal", blend_params(net, emos, float(w)), y) for w in WEIGHTS]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert choose_weight("normal", net, emos, y) == float(WEIGHTS[int(np.argmin(want))])
    assert 0.0 < choose_weight("normal", net, emos, y) < 1.0
