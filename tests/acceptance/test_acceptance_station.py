"""A fixed small training run: products and scores against known-good outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import probcast
from probcast.configs import tiny
from probcast.products.table_files import read_predictions
from probcast.testing.stations import station_table


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("acceptance")
    table = station_table(n_stations=4, n_inits=30, seed=7)
    train, test = table[table.init_time < "2021-01-23"], table[table.init_time >= "2021-01-24"]
    train.to_parquet(root / "train.parquet")
    config = tiny.get_config()
    config.data.path = str(root / "train.parquet")
    config.train.epochs = 6
    config.train.n_seeds = 2
    config.train.blend_emos = True
    probcast.train_model(config, root / "model")
    return root, test.reset_index(drop=True)


def test_station_products_and_scores_match_known_good(fixed_run, known_good, tmp_path):
    root, test = fixed_run
    request = probcast.PredictRequest(
        model=root / "model",
        input=test,
        output=tmp_path / "pred.parquet",
        members=8,
        quantiles=(0.1, 0.5, 0.9),
        thresholds={"tp": (0.1, 1.0), "t2m": (273.15,)},
        seed=11,
    )
    result = probcast.run(request)
    table, families = read_predictions(result.paths["table"])
    layout = {"columns": list(table.columns), "families": families, "rows": len(table)}
    ver = probcast.evaluate(test, {"model": table}, families={"model": families})
    s = ver.scores
    overall = s[s["by"] == "all"]
    scores = {
        f"{r.variable}/{r.metric}": float(r.value)
        for r in overall.itertuples()
        if np.isfinite(r.value)
    }
    for var in ("t2m", "tp"):
        scores[f"{var}/mean_q0.5"] = float(table[f"{var}_q0.5"].mean())
        scores[f"{var}/mean_m"] = float(table.filter(like=f"{var}_m0").to_numpy().mean())
    known_good.check("station-tiny-2seeds", layout, scores, rtol=2e-3)
