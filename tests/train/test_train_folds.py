"""Time-blocked cross-validation: the folds, and training with them."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.configs import tiny
from probcast.model import artefact
from probcast.split import time_blocks
from probcast.testing.stations import station_table
from probcast.train.adapt import cv_folds, seeds_per_fold
from probcast.train.loop import train


def _table(n_inits: int, leads: list[int], stations: int = 2) -> pd.DataFrame:
    inits = pd.date_range("2024-01-01", periods=n_inits, freq="12h", tz="UTC")
    rows = [(f"S{s}", t, h) for t in inits for h in leads for s in range(stations)]
    df = pd.DataFrame(rows, columns=["station", "init_time", "lead_time"])
    df["valid_time"] = df["init_time"] + pd.to_timedelta(df["lead_time"], unit="h")
    return df


@settings(max_examples=40, deadline=None)
@given(
    n_inits=st.integers(6, 40),
    k=st.integers(2, 6),
    leads=st.lists(st.sampled_from([0, 6, 12, 24, 48, 96]), min_size=1, max_size=4, unique=True),
)
def test_every_row_is_held_out_once_and_no_fitted_valid_time_is_held_out(n_inits, k, leads):
    table = _table(n_inits, sorted(leads))
    if n_inits < k:
        return
    folds = time_blocks(table, k)
    assert len(folds) == k
    held = pd.concat([h for _, h in folds])
    assert len(held) == len(table)
    assert not held.duplicated(["station", "init_time", "lead_time"]).any()
    for fit, h in folds:
        assert len(h)
        # blocks are contiguous in init time
        assert not fit["init_time"].isin(h["init_time"]).any()
        lo, hi = h["valid_time"].min(), h["valid_time"].max()
        assert not fit["valid_time"].between(lo, hi).any()


def test_blocks_have_about_equal_rows():
    folds = time_blocks(_table(100, [0, 6]), 5)  # 4 rows per init, 400 rows
    sizes = [len(h) for _, h in folds]
    assert max(sizes) - min(sizes) <= 2 * 4  # blocks are whole inits


def test_cv_folds_rule():
    cfg = tiny.get_config()
    table = _table(30, [0])
    cfg.train.cv_folds = 5
    assert cv_folds(cfg, table) == 5
    cfg.train.cv_max_rows = 10
    assert cv_folds(cfg, table) == 0  # too many rows: one validation block
    cfg.train.cv_max_rows = 0
    assert cv_folds(cfg, _table(9, [0])) == 0  # fewer than 2 inits per fold
    cfg.train.cv_folds = 1
    assert cv_folds(cfg, table) == 0


def _three_folds(tmp_path):
    """A small station table written to ``tmp_path`` and a tiny config with 3 folds on it."""
    table = station_table(n_stations=3, n_inits=40, targets=("t2m",), seed=3)
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    cfg = tiny.get_config()
    cfg.data.path = str(path)
    cfg.train.cv_folds = 3
    return table, cfg


def test_training_with_folds_pools_the_fold_networks(tmp_path):
    table, cfg = _three_folds(tmp_path)
    cfg.train.blend_emos = True
    train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    model = artefact.load(run)
    assert len(model.networks) == 6  # n_seeds=1: cv_seeds_per_fold (2) per fold
    assert not (run / "selection").exists()  # no refit phase
    calib = json.loads((run / "calibration.json").read_text())
    assert calib["rows"] == len(table)  # every row scored out of fold
    assert model.spread_factor == calib["spread_factor"]
    blend_file = run / "blend.json"
    if blend_file.exists():
        assert json.loads(blend_file.read_text())["folds"] == 3
    params = model.params(table.iloc[:50])["t2m"]
    assert np.isfinite(params["loc"]).all() and (params["scale"] > 0).all()
    summary = json.loads((run / "summary.json").read_text())["seeds"]
    assert len(summary) == 6


def test_networks_per_fold():
    cfg = tiny.get_config()
    cfg.train.n_seeds, cfg.train.cv_seeds_per_fold = 1, 2
    assert seeds_per_fold(cfg, 5) == 2
    cfg.train.n_seeds = 11  # more seeds than folds x 2: ceil(11 / 5)
    assert seeds_per_fold(cfg, 5) == 3
    cfg.train.n_seeds, cfg.train.cv_seeds_per_fold = 1, 1
    assert seeds_per_fold(cfg, 5) == 1


class _Stop(Exception):
    pass


def test_no_held_out_observation_reaches_a_fold_s_fit_rows(tmp_path, monkeypatch):
    """Recent errors of fit rows just after a block were means of the block's observations."""
    from probcast import recent
    from probcast.train import loop

    _, cfg = _three_folds(tmp_path)
    cfg.features.recent_error_hours = 48.0
    seen = []

    def capture(config, spec, heads, folds, workdir, tracker):
        seen.extend(folds)
        raise _Stop

    monkeypatch.setattr(loop, "_cross_fit", capture)
    with pytest.raises(_Stop):
        train(cfg, tmp_path / "run")
    assert len(seen) == 3
    leaked = 0
    for fit, held in seen:
        bare = fit.drop(columns=["err_t2m"])
        alone = recent.with_recent_errors(bare, ["t2m"], 48.0)["err_t2m"].to_numpy()
        np.testing.assert_array_equal(fit["err_t2m"].to_numpy(), alone)
        block = recent.with_recent_errors(bare, ["t2m"], 48.0, history=held)["err_t2m"]
        leaked += int((block.fillna(-9).to_numpy() != np.nan_to_num(alone, nan=-9)).sum())
    assert leaked > 0  # rows the block's observations would have reached
