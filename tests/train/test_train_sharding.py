"""Data parallelism over two (forced) CPU devices with bfloat16 compute."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from probcast.model.artefact import load
from probcast.testing.stations import station_table


@pytest.mark.slow
def test_two_device_bf16_training(tmp_path):
    table = station_table(n_stations=3, n_inits=12)
    table.to_parquet(tmp_path / "table.parquet")
    args = [
        "--config=tiny",
        f"--workdir={tmp_path / 'model'}",
        f"--config.data.path={tmp_path / 'table.parquet'}",
        "--config.train.epochs=2",
        "--config.train.batch_size=63",  # rounded up to a multiple of the device count
        "--config.train.compute_dtype=bfloat16",
        "--config.model.generative=tp",
    ]
    code = (
        "import sys, jax; from probcast.train.cli import main; "
        "assert jax.device_count() == 2, jax.devices(); "
        f"sys.exit(main({args!r}))"
    )
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "devices 2" in proc.stderr
    model = load(tmp_path / "model")
    params = jax.tree.leaves(model._states[0])
    assert {p.dtype for p in params} == {np.dtype("float32")}
    members = model.sample(table.iloc[:20], members=4, seed=0)
    assert all(np.isfinite(m).all() for m in members.values())
