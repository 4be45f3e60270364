"""Skill floor on real data: verif-norway-precip, 6-h precipitation at 147 stations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from probcast import dists
from probcast.cli import main


@pytest.mark.realdata
@pytest.mark.slow
def test_norway_precip_beats_raw_forecast(mirror, tmp_path):
    from probcast.data.prepare import prepare

    test = prepare("verif-norway-precip").test
    test.to_parquet(tmp_path / "test.parquet")
    model, pred = tmp_path / "model", tmp_path / "pred.parquet"
    args = [
        "--config=norway_precip",
        f"--workdir={model}",
        "--config.tracking.backend=none",
        "--config.train.n_seeds=2",
    ]
    assert main(["train", *args]) == 0
    assert (
        main(
            [
                "predict",
                f"--model={model}",
                f"--input={tmp_path / 'test.parquet'}",
                f"--output={pred}",
                "--members=50",
                "--quantiles=0.5",
            ]
        )
        == 0
    )
    out = pd.read_parquet(pred)
    y = out["obs_tp"].to_numpy()
    ok = np.isfinite(y)
    mae_raw = np.abs(test["fc_tp"].to_numpy() - y)[ok].mean()
    params = {k: jnp.asarray(out[f"tp_{k}"].to_numpy()[ok]) for k in ("loc", "scale")}
    crps = float(dists.get("censored_logistic").crps(params, jnp.asarray(y[ok])).mean())
    members = jnp.asarray(out[[f"tp_m{j:03d}" for j in range(50)]].to_numpy()[ok])
    crps_members = float(dists.crps_ensemble(members, jnp.asarray(y[ok])).mean())
    assert 1 - crps / mae_raw > 0.15, (crps, mae_raw)
    assert 1 - crps_members / mae_raw > 0.15, (crps_members, mae_raw)
    assert abs(crps_members - crps) < 0.05 * crps  # members agree with the closed form
