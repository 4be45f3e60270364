"""TrainedModel predictions (untrained networks: no training needed) and artefact files."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from probcast import dists
from probcast.configs import tiny
from probcast.features import FeatureSpec
from probcast.model.artefact import load
from probcast.model.network import build_model
from probcast.model.predictor import PredictOptions, TrainedModel
from probcast.testing.stations import station_table


def _model(heads, n_nets=1, combine="vincentize"):
    config = tiny.get_config()
    # Every parameter is perturbed below; perturbed linear skips would add raw-feature terms
    # that widen the distributions beyond the sampling tolerances of these tests.
    config.model.linear_skip = False
    table = station_table(n_stations=2, n_inits=3)
    spec = FeatureSpec.fit(table, list(heads))
    nets = []
    for seed in range(n_nets):
        net = build_model(spec.n_features, spec.n_stations, heads, config.model, seed=seed)
        # Perturb the zero-initialised parametric heads so the networks differ.
        state = nnx.state(net, nnx.Param)
        leaves, tree = jax.tree.flatten(state)
        key = jax.random.key(seed)
        leaves = [
            v + 0.3 * jax.random.normal(jax.random.fold_in(key, i), v.shape)
            for i, v in enumerate(leaves)
        ]
        nnx.update(net, jax.tree.unflatten(tree, leaves))
        nets.append(net)
    options = PredictOptions(combine=combine, quantile_members=400)
    return TrainedModel(config, spec, heads, nets, {}, options=options), table


@pytest.mark.parametrize("combine", ["vincentize", "mixture"])
def test_members_are_coherent_and_agree_with_quantiles(combine):
    model, table = _model({"t2m": "normal", "tp": "censored_logistic"}, n_nets=2, combine=combine)
    members = model.sample(table, members=64, seed=1)
    assert members["t2m"].shape == members["tp"].shape == (len(table), 64)
    assert (members["tp"] >= 0).all() and np.isfinite(members["t2m"]).all()
    if combine == "vincentize":  # one uniform per member for every variable: same ranks
        wet = members["tp"] > 0
        for r in range(len(table)):
            tp, t2 = members["tp"][r, wet[r]], members["t2m"][r, wet[r]]
            assert (np.argsort(tp) == np.argsort(t2)).all()
    again = model.sample(table, members=64, seed=1)
    np.testing.assert_array_equal(again["t2m"], members["t2m"])
    many = model.sample(table, members=4000, seed=2)["t2m"]
    q = model.quantiles(table, [0.1, 0.5, 0.9])["t2m"]
    np.testing.assert_allclose(np.quantile(many, [0.1, 0.5, 0.9], axis=1).T, q, atol=0.25)
    p = model.exceedance(table, {"t2m": q[0].tolist()})["t2m"]
    np.testing.assert_allclose(p[0], [0.9, 0.5, 0.1], atol=1e-3)


@pytest.mark.parametrize(
    "head", ["censored_logistic", "truncated_normal", "censored_normal", "censored_normal_01"]
)
def test_products_of_a_pooled_bounded_target_are_those_of_its_parameters(head):
    model, table = _model({"tp": head}, n_nets=3)  # the file's parameters, its products
    assert model.pooled_params_are_predictive("tp")
    dist = dists.get(head)
    p = {k: v[:, None] for k, v in model.params(table)["tp"].items()}
    levels = [0.1, 0.5, 0.9]
    q = model.quantiles(table, levels)["tp"]
    np.testing.assert_allclose(q, dist.quantile(p, np.asarray(levels)), atol=1e-5)
    t = np.asarray([0.0, 0.5])
    prob = model.exceedance(table, {"tp": t.tolist()})["tp"]
    np.testing.assert_allclose(prob, 1.0 - dist.cdf(p, t), atol=1e-5)
    if head.startswith("censored"):
        assert 0.05 < prob[:, 0].mean() < 0.95  # the point mass matters here


def test_generative_heads_quantiles_and_probabilities():
    model, table = _model({"t2m": "generative", "tp": "generative"}, n_nets=2)
    assert model.params(table) == {}
    members = model.sample(table, members=10, seed=0)
    assert members["tp"].shape == (len(table), 10) and (members["tp"] >= 0).all()
    q = model.quantiles(table, [0.2, 0.8])
    assert (q["tp"][:, 1] >= q["tp"][:, 0]).all()
    p = model.exceedance(table, {"tp": [0.0, 1e6]})["tp"]
    assert ((p >= 0) & (p <= 1)).all() and (p[:, 1] == 0).all()


def test_params_are_valid_and_bad_inputs_raise():
    model, table = _model({"t2m": "normal", "tp": "censored_logistic"})
    params = model.params(table)
    assert set(params) == {"t2m", "tp"} and (params["tp"]["scale"] > 0).all()
    assert params["t2m"]["loc"].shape == (len(table),)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        model.quantiles(table, [0.0])
    with pytest.raises(ValueError, match="non-targets"):
        model.exceedance(table, {"msl": [1.0]})
    with pytest.raises(ValueError, match="members"):
        model.sample(table, members=0)


def test_load_needs_a_model_workdir(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load(tmp_path)
