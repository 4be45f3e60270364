import json

import numpy as np
import pytest

from probcast.configs import tiny
from probcast.dists import pooling
from probcast.model import artefact
from probcast.testing.stations import station_table
from probcast.train import blend
from probcast.train.loop import train


def _normal(loc: float, scale: float, n: int) -> dict[str, np.ndarray]:
    return {"loc": np.full(n, loc, np.float32), "scale": np.full(n, scale, np.float32)}


def test_blend_is_the_weighted_mean_of_loc_and_scale():
    net, emos = _normal(0.0, 1.0, 3), _normal(2.0, 3.0, 3)
    emos["loc"][1] = np.nan  # EMOS undefined on that row: the network's parameters stay
    out = pooling.blend_params(net, emos, 0.25)
    np.testing.assert_allclose(out["loc"], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(out["scale"], [1.5, 1.0, 1.5])


@pytest.mark.parametrize(("truth_loc", "expected"), [(0.0, 0.0), (2.0, 1.0)])
def test_weight_goes_to_the_better_model(truth_loc, expected):
    rng = np.random.default_rng(0)
    y = rng.normal(truth_loc, 1.0, 4000)
    w = blend.choose_weight("normal", _normal(0.0, 1.0, y.size), _normal(2.0, 1.0, y.size), y)
    assert w == expected


def test_weight_in_between_when_both_are_half_right():
    rng = np.random.default_rng(1)
    y = rng.normal(1.0, 1.0, 4000)
    w = blend.choose_weight("normal", _normal(0.0, 1.0, y.size), _normal(2.0, 1.0, y.size), y)
    assert 0.3 <= w <= 0.7


def test_training_writes_the_blend_and_prediction_applies_it(tmp_path):
    table = station_table(n_stations=3, n_inits=40, targets=("t2m",), seed=3)
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    cfg = tiny.get_config()
    cfg.data.path = str(path)
    cfg.train.blend_emos = True
    cfg.train.refit = True
    train(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "blend.json").read_text())["blend"]
    model = artefact.load(tmp_path / "run")
    assert model.blend == saved
    params = model.params(table.iloc[:50])["t2m"]
    assert np.isfinite(params["loc"]).all() and (params["scale"] > 0).all()
    if saved:  # with a blend, prediction differs from the bare networks
        bare = artefact.TrainedModel(
            model.config,
            model.spec,
            model.heads,
            model.networks,
            model.meta,
            spread_factor=model.spread_factor,
        )
        assert not np.allclose(bare.params(table.iloc[:50])["t2m"]["loc"], params["loc"])


def test_refit_emos_starts_from_the_selection_and_reaches_the_cold_fit():
    from probcast.baselines.emos import EmosModel, fit_emos

    table = station_table(n_stations=4, n_inits=40, targets=("t2m",), seed=5)
    fit_rows = table.iloc[: int(len(table) * 0.8)]
    selected = fit_emos(fit_rows, "t2m", family="normal", by_station=True)
    out = blend.refit_emos({"t2m": {"weight": 0.4, "emos": selected.to_dict()}}, table)
    refit = EmosModel.from_dict(out["t2m"]["emos"])
    cold = fit_emos(table, "t2m", family="normal", by_station=True)
    assert out["t2m"]["weight"] == 0.4
    assert set(refit.station_coefs) == set(cold.station_coefs)
    np.testing.assert_allclose(refit.global_coefs, cold.global_coefs, rtol=1e-4, atol=1e-5)
    for st, coefs in cold.station_coefs.items():
        np.testing.assert_allclose(refit.station_coefs[st], coefs, rtol=1e-4, atol=1e-5)
    assert not np.allclose(selected.global_coefs, cold.global_coefs, rtol=1e-3)  # it moved
