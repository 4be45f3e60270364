"""A target's own features (its recent error) reach only its head (issue 12)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from probcast.configs import tiny
from probcast.features import FeatureSpec
from probcast.model.network import ProbNet, build_model
from probcast.model.routing import split_columns
from probcast.testing.stations import station_table

HEADS = {"t2m": "normal", "tp": "censored_logistic", "ws10": "generative"}
PRIVATE = {"t2m": [4, 5], "tp": [6], "ws10": [7]}
N, F, S, M = 9, 8, 3, 4


def _randomised(model: nnx.Module, seed: int = 1) -> nnx.Module:
    """``model`` with every parameter random (heads and skips start at zero)."""
    params = nnx.state(model, nnx.Param)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [0.5 * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)]
    nnx.update(model, jax.tree.unflatten(tree, new))
    return model


@nnx.jit  # one compilation per model: much faster than op-by-op dispatch on CPU
def _raw(model: nnx.Module, x: jax.Array) -> dict[str, jax.Array]:
    station = jnp.arange(x.shape[0]) % S
    return model(x, station, jax.random.normal(jax.random.key(2), (x.shape[0], M, 2)))


def _outputs(model: nnx.Module, x: jax.Array) -> dict[str, np.ndarray]:
    return {v: np.asarray(o) for v, o in _raw(model, x).items()}


def _net(private=PRIVATE, heads=HEADS, **kw) -> ProbNet:
    model = ProbNet(
        F, S, heads, hidden=8, noise_dim=2, head_hidden=4, linear_skip=True, private=private,
        rngs=nnx.Rngs(0), **kw,
    )  # fmt: skip
    return _randomised(model)


def _moved(out: dict, base: dict) -> set[str]:
    return {v for v in out if not np.allclose(out[v], base[v], atol=1e-6)}


@pytest.mark.parametrize("noise_to", ["heads", "trunk"])
def test_own_columns_move_only_their_own_head(noise_to):
    heads = HEADS if noise_to == "heads" else dict.fromkeys(HEADS, "generative")
    model = _net(heads=heads, noise_to=noise_to)
    assert model.shared == (0, 1, 2, 3)
    x = jax.random.normal(jax.random.key(0), (N, F))
    base = _outputs(model, x)
    for var, cols in PRIVATE.items():
        for col in cols:
            assert _moved(_outputs(model, x.at[:, col].add(2.0)), base) == {var}, (var, col)
    # a shared feature (through the trunk) moves every head
    assert _moved(_outputs(model, x.at[:, 0].add(2.0)), base) == set(HEADS)
    if noise_to == "heads":  # the weight of a parametric head's own column depends on context
        shift = _outputs(model, x.at[:, 4].add(1.0))["t2m"] - base["t2m"]
        assert float(np.ptp(shift[:, 0])) > 1e-3


def test_without_routing_a_recent_error_reaches_every_head():
    """The failure the routing prevents: through the trunk, err_tp moves t2m too."""
    model = _net(private=None)
    x = jax.random.normal(jax.random.key(0), (N, F))
    assert _moved(_outputs(model, x.at[:, 6].add(2.0)), _outputs(model, x)) == set(HEADS)


def test_single_target_network_is_unchanged():
    heads = {"t2m": "normal"}
    routed, plain = _net(private={"t2m": [4, 5]}, heads=heads), _net(private=None, heads=heads)
    assert routed.shared == tuple(range(F)) and not routed.own
    same = jax.tree.map(np.array_equal, nnx.state(routed, nnx.Param), nnx.state(plain, nnx.Param))
    assert all(jax.tree.leaves(same))


@pytest.mark.parametrize(
    ("private", "match"),
    [
        ({"t2m": [4], "tp": [4]}, "distinct"),
        ({"t2m": [F]}, "distinct positions"),
        ({"t2m": [4], "sp": [5]}, "non-targets"),
    ],
)
def test_bad_private_columns_are_refused(private, match):
    with pytest.raises(ValueError, match=match):
        split_columns(private, list(HEADS), F)


def test_spec_routes_recent_errors_end_to_end():
    """FeatureSpec -> build_model: changing a table's err_tp moves only the tp forecast."""
    table = station_table(n_stations=3, n_inits=12, targets=("t2m", "tp"))
    config = tiny.get_config()
    spec = FeatureSpec.fit(table, ["t2m", "tp"], config.features)
    names = spec.feature_names()
    own = spec.own_features()
    assert {v: [names[i] for i in c] for v, c in own.items()} == {
        "t2m": ["err_t2m", "missing_err_t2m"],
        "tp": ["err_tp", "missing_err_tp"],
    }
    heads = {"t2m": "normal", "tp": "censored_logistic"}
    model = build_model(spec.n_features, spec.n_stations, heads, config.model, seed=0, private=own)
    _randomised(model)
    table = spec.derive(table)
    base = _outputs(model, jnp.asarray(spec.transform(table).x))
    shifted = table.assign(err_tp=table["err_tp"] + 1.0)
    assert _moved(_outputs(model, jnp.asarray(spec.transform(shifted).x)), base) == {"tp"}
    # "trunk" (and a configuration from before the option) feeds every feature to the trunk
    config.model.recent_errors_to = "trunk"
    assert not build_model(spec.n_features, spec.n_stations, heads, config.model, seed=0).own
    del config.model["recent_errors_to"]
    legacy = build_model(spec.n_features, spec.n_stations, heads, config.model, seed=0, private=own)
    assert not legacy.own and len(legacy.shared) == spec.n_features
    config.model.recent_errors_to = "both"
    with pytest.raises(ValueError, match="recent_errors_to"):
        build_model(spec.n_features, spec.n_stations, heads, config.model, seed=0, private=own)


def test_no_recent_errors_no_own_features():
    table = station_table(n_stations=2, n_inits=5, targets=("t2m", "tp"))
    config = tiny.get_config()
    config.features.recent_error_hours = 0.0
    spec = FeatureSpec.fit(table, ["t2m", "tp"], config.features)
    assert spec.own_features() == {"t2m": [], "tp": []}
