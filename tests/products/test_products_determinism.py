"""Rewrites are byte-identical whatever the threads do; the ordered block writer."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

from probcast.products import build_products, write_products
from probcast.products.blocks import StoreJob, in_order, store_in_order
from probcast.testing import products as synthetic


def _digest(path: Path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else "").encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def members() -> xr.Dataset:
    params = synthetic.params((96, 160), variables=("t2m", "tp"))
    products = build_products(
        params,
        families={"t2m": "normal", "tp": "censored_logistic"},
        products=["members"],
        n_members=9,
        chunks={"y": 32, "x": 32},
    )
    return products["members"]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_threaded_rewrites_are_byte_identical(
    members: xr.Dataset, tmp_path: Path, suffix: str
) -> None:
    assert members["t2m"].data.npartitions == 15  # many blocks, so the threads race
    digests = []
    with dask.config.set(scheduler="threads", num_workers=4):
        for i in range(3):
            path = tmp_path / f"m{i}{suffix}"
            write_products(members, path)
            digests.append(_digest(path))
    assert digests[0] == digests[1] == digests[2]


def test_in_order_yields_in_submission_order_while_running_in_parallel() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def task(i: int) -> Callable[[], int]:
        def run() -> int:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02 * (5 - i % 5))  # later tasks finish first
            with lock:
                running[0] -= 1
            return i

        return run

    assert list(in_order((task(i) for i in range(10)), workers=3)) == list(range(10))
    assert peak[0] > 1


def test_store_in_order_writes_blocks_in_c_order() -> None:
    import dask.array as dsa

    source = dsa.arange(24, chunks=5).reshape(4, 6).rechunk((2, 3))
    calls: list[tuple[slice, ...]] = []

    class Target:
        def __init__(self) -> None:
            self.values = np.zeros((4, 6), np.int64)

        def __setitem__(self, where: tuple[slice, ...], block: np.ndarray) -> None:
            calls.append(where)
            self.values[where] = block

    target = Target()
    store_in_order([StoreJob(source, target)], workers=3)
    np.testing.assert_array_equal(target.values, np.arange(24).reshape(4, 6))
    starts = [(w[0].start, w[1].start) for w in calls]
    assert starts == [(0, 0), (0, 3), (2, 0), (2, 3)]


def test_a_failing_block_propagates_and_leaves_no_file(members: xr.Dataset, tmp_path: Path) -> None:
    def boom(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("block failed")

    broken = members.copy()
    broken["tp"] = broken["tp"].copy(data=broken["tp"].data.map_blocks(boom, dtype=np.float32))
    with pytest.raises(RuntimeError, match="block failed"):
        write_products(broken, tmp_path / "m.nc", keepbits={"t2m": 5, "tp": 5})
    assert list(tmp_path.iterdir()) == []
