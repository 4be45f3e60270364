"""Separate threaded runs write byte-identical product files (sha256), as docs/products.md says."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probcast.io import sha256_file

RUN = """
import sys
import dask
from probcast.products import build_products, write_products
from probcast.testing import products as synthetic

out = sys.argv[1]
members = synthetic.members((48, 64), variables=("t2m", "tp"), n_members=9, seed=5)
products = build_products(
    members,
    products=["members", "percentiles", "probabilities"],
    percentiles=[10, 25, 50, 75, 90],
    thresholds={"tp": [0.1, 1.0, 5.0], "t2m": [273.15, 283.15]},
    chunks={"y": 16, "x": 16},
)
assert products["members"]["tp"].data.npartitions == 12
with dask.config.set(scheduler="threads", num_workers=3):
    for name, ds in products.items():
        for suffix in (".nc", ".zarr"):
            write_products(ds, f"{out}/{name}{suffix}")
"""


def _digests(folder: Path) -> dict[str, str]:
    out = {}
    for product in sorted(folder.iterdir()):
        if product.is_file():
            out[product.name] = sha256_file(product)
            continue
        h = hashlib.sha256()  # a Zarr store: every file, by its relative path
        for f in sorted(p for p in product.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(product)).encode() + b"\0" + f.read_bytes())
        out[product.name] = h.hexdigest()
    return out


@pytest.mark.slow
def test_two_threaded_processes_write_byte_identical_products(tmp_path: Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1705291200", "OMP_NUM_THREADS": "1"}
    folders = [tmp_path / "a", tmp_path / "b"]
    runs = []
    for folder in folders:
        folder.mkdir()
        cmd = [sys.executable, "-c", RUN, str(folder)]
        runs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
    first, second = (_digests(f) for f in folders)
    assert len(first) == 2 * 4  # members, percentiles, 2 probability products; NetCDF + Zarr
    assert first == second
