"""The multi-task network: head shapes, valid distributions, dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from probcast import dists
from probcast.configs import tiny
from probcast.dists import GENERATIVE
from probcast.model.network import (
    ProbNet,
    build_model,
    generative_members,
    head_families,
    predictive,
)

N, F, S, M = 7, 5, 4, 3


def _inputs(k: int = 2):
    key = jax.random.key(0)
    x = jax.random.normal(key, (N, F))
    station = jnp.arange(N) % S
    noise = jax.random.normal(jax.random.key(1), (N, M, k))
    return x, station, noise


@pytest.mark.parametrize("family", sorted(dists.DISTRIBUTIONS))
def test_parametric_head_shapes_and_valid_params(family):
    dist = dists.get(family)
    heads = {"t2m": family}
    model = build_model(F, S, heads, tiny.get_config().model, seed=0)
    x, station, _ = _inputs()

    @jax.jit  # one compilation is much faster than op-by-op dispatch on CPU
    def run(x, station):
        center = jnp.linspace(0.0, 3.0, N)[:, None]
        params, members = predictive(model, heads, x, station, center, jnp.ones(1))
        samples = dist.sample(params["t2m"], jax.random.key(2), 11)
        return model(x, station), params, members, samples, dist.cdf(params["t2m"], jnp.zeros(N))

    raw, params, members, samples, mass = run(x, station)
    assert raw["t2m"].shape == (N, len(dist.param_names)) and raw["t2m"].dtype == jnp.float32
    assert not members and set(params["t2m"]) == set(dist.param_names)
    assert samples.shape == (N, 11) and bool(jnp.isfinite(samples).all())
    assert bool(((mass >= 0) & (mass <= 1)).all())
    if "scale" in params["t2m"]:
        assert bool((params["t2m"]["scale"] > 0).all())


@pytest.mark.parametrize("noise_to", ["heads", "trunk"])
def test_generative_head_members(noise_to):
    cfg = tiny.get_config().model
    cfg.noise_to = noise_to
    heads = {"t2m": "generative", "tp": "generative"}
    model = build_model(F, S, heads, cfg, seed=0)
    x, station, noise = _inputs(cfg.noise_dim)
    center = jnp.stack([jnp.full(N, 280.0), jnp.zeros(N)], axis=1)
    run = jax.jit(
        lambda *a: (model(*a), predictive(model, heads, *a[:2], center, jnp.ones(2), a[2]))
    )
    raw, (_, members) = run(x, station, noise)
    assert raw["t2m"].shape == raw["tp"].shape == (N, M)
    assert bool(jnp.isfinite(members["t2m"]).all())
    assert bool((members["tp"] >= 0).all())  # support of precipitation
    assert float(jnp.std(members["t2m"], axis=1).mean()) > 0  # noise changes members


def test_mixed_heads_and_missing_noise():
    heads = {"t2m": "normal", "tp": GENERATIVE}
    model = ProbNet(F, S, heads, hidden=8, noise_dim=2, head_hidden=4, rngs=nnx.Rngs(0))
    x, station, noise = _inputs(2)
    out = jax.jit(lambda *a: model(*a))(x, station, noise)
    assert out["t2m"].shape == (N, 2) and out["tp"].shape == (N, M)
    with pytest.raises(ValueError, match="noise"):
        jax.jit(lambda: model(x, station))()
    with pytest.raises(ValueError, match="every target"):
        ProbNet(F, S, heads, noise_to="trunk", rngs=nnx.Rngs(0))


def test_raw_zero_at_init_gives_raw_forecast_centre():
    heads = {"t2m": "normal"}
    model = build_model(F, S, heads, tiny.get_config().model, seed=3)
    x, station, _ = _inputs()
    center = jnp.full((N, 1), 280.0)
    params, _ = predictive(model, heads, x, station, center, jnp.full(1, 2.0))
    np.testing.assert_allclose(params["t2m"]["loc"], 280.0)
    np.testing.assert_allclose(params["t2m"]["scale"], 2.0, rtol=1e-5)


def test_bf16_compute_keeps_fp32_params():
    cfg = tiny.get_config().model
    cfg.layer_norm, cfg.dropout = True, 0.5
    heads = {"t2m": "normal", "tp": "generative"}
    model = build_model(F, S, heads, cfg, seed=0, dtype=jnp.bfloat16)
    params = nnx.state(model, nnx.Param)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    x, station, noise = _inputs(cfg.noise_dim)
    run = jax.jit(lambda key: model(x, station, noise, dropout_key=key))
    out = jax.jit(lambda: model(x, station, noise))()
    assert {v.dtype for v in out.values()} == {jnp.dtype("float32")}
    a, b = run(jax.random.key(0))["tp"], run(jax.random.key(1))["tp"]
    assert not np.array_equal(a, b)  # dropout active with a key
    np.testing.assert_array_equal(jax.jit(lambda: model(x, station, noise))()["tp"], out["tp"])


def test_head_families_config():
    cfg = ml_collections.ConfigDict({"generative": "tp", "distributions": "t2m:logistic"})
    assert head_families(["t2m", "tp"], cfg) == {"t2m": "logistic", "tp": "generative"}
    cfg = ml_collections.ConfigDict({"generative": "", "distributions": ""})
    assert head_families(["t2m", "tp"], cfg) == {"t2m": "normal", "tp": "censored_logistic"}
    with pytest.raises(ValueError, match="non-targets"):
        head_families(["t2m"], ml_collections.ConfigDict({"generative": "tp", "distributions": ""}))
    with pytest.raises(KeyError, match="unknown distribution"):
        head_families(
            ["t2m"], ml_collections.ConfigDict({"generative": "", "distributions": "t2m:x"})
        )


def test_generative_members_support():
    raw = jnp.array([[-3.0, 0.0, 3.0]])
    assert generative_members(raw, jnp.zeros(1), 1.0, "tp").min() == 0.0
    frac = generative_members(raw, jnp.full(1, 0.5), 1.0, "tcc")
    assert float(frac.min()) == 0.0 and float(frac.max()) == 1.0
    np.testing.assert_allclose(generative_members(raw, jnp.zeros(1), 2.0, "t2m"), 2.0 * raw)


def test_linear_skip_is_an_emos_like_linear_term():
    cfg = tiny.get_config().model
    heads = {"t2m": "normal", "tp": "generative"}
    model = build_model(F, S, heads, cfg, seed=0)
    assert set(model.skips) == {"t2m"}  # parametric heads only
    x, station, noise = _inputs(cfg.noise_dim)
    base = model(x, station, noise)["t2m"]
    kernel = jnp.zeros((F, 2)).at[0, 0].set(1.5)
    model.skips["t2m"].kernel.value = kernel
    out = model(x, station, noise)["t2m"]
    np.testing.assert_allclose(out - base, x @ kernel, rtol=1e-5, atol=1e-6)
    cfg.linear_skip = False
    assert not build_model(F, S, heads, cfg, seed=0).skips
