"""Shared fixtures: the real-data mirror and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT_MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def mirror_path() -> Path | None:
    """Return the local mirror of the benchmark data, or None when absent."""
    env = os.environ.get("PROBCAST_DATA_MIRROR")
    path = Path(env) if env else _DEFAULT_MIRROR
    return path if (path / "manifest.json").exists() else None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep every test's downloads and prepared data out of the user's cache.

    The JAX compilation cache is off for the whole session (:func:`pytest_configure`).
    """
    if "PROBCAST_CACHE" not in os.environ:
        monkeypatch.setenv("PROBCAST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Path of the real-data mirror; skips the test when it is not available."""
    path = mirror_path()
    if path is None:
        pytest.skip("real benchmark data mirror not available (set PROBCAST_DATA_MIRROR)")
    monkeypatch.setenv("PROBCAST_DATA_MIRROR", str(path))
    return path


_EXIT_STATUS: list[int] = []


def pytest_configure(config: pytest.Config) -> None:
    """No JAX compilation cache (``PROBCAST_JAX_CACHE=off``) unless the environment asks.

    Set for the session, so that module-scoped fixtures and the processes tests start see
    it too: tests count XLA compilations, which cache hits would hide, and must not write
    to the user's cache (tests/core/test_core_compile_cache.py turns it on in its own
    processes).
    """
    os.environ.setdefault("PROBCAST_JAX_CACHE", "off")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the session's exit status for :func:`pytest_unconfigure`."""
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without running native library destructors once pytest has reported.

    The ecCodes (eccodeslib) and netCDF4 wheels each bundle their own copies of shared
    libraries; with both loaded, some test orders abort in the C-level teardown at exit
    ("free(): invalid pointer"), after every test passed and the summary was printed, and
    the abort would replace pytest's exit status. ``os._exit`` keeps the real status. Set
    ``PROBCAST_TEST_HARD_EXIT=0`` to exit normally.
    """
    if _EXIT_STATUS and os.environ.get("PROBCAST_TEST_HARD_EXIT", "1") != "0":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


@pytest.fixture(scope="session")
def tp6_grid_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny gridded model of 6-h ``tp`` (its training grid records the period), trained once."""
    from probcast import periods
    from probcast.cli import main
    from probcast.ingest.gridded import write_dataset
    from probcast.testing.grids import forecast_grid

    root = tmp_path_factory.mktemp("tp6")
    train = forecast_grid((8, 10), 8, variables=("tp",), lead_hours=(12.0,), start="2020-11-01")
    write_dataset(periods.recorded(train, {"tp": 6.0}), root / "train.nc")
    args = [f"--workdir={root / 'm'}", f"--config.data.path={root / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1"]) == 0
    return root / "m"
