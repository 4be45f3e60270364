"""probcast: calibrated probabilistic forecasts from deterministic NWP output.

The public API, stable and small (everything else is reached through it)::

    import probcast

    model = probcast.load_model("runs/mine")                  # a trained model's workdir
    request = probcast.PredictRequest(model="runs/mine", input="new_runs.parquet",
                                      output="pred.parquet", members=51,
                                      quantiles=(0.05, 0.5, 0.95), thresholds={"tp": (1.0,)})
    result = probcast.run(request)                            # stations or grid, by input
    table, families = probcast.read_predictions("pred.parquet")
    ver = probcast.evaluate(truth, {"model": table}, families={"model": families})
    probcast.train_model(config, "runs/new")                  # an ml_collections config
    probcast.enable_compile_cache()    # reuse compiled kernels across processes (the CLI does)

Names are imported on first use, so ``import probcast`` stays fast.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real types for type checkers; at run time names load on first use
    from probcast.compile_cache import enable as enable_compile_cache
    from probcast.dists import Predictive
    from probcast.model.artefact import load as load_model
    from probcast.predict.request import PredictRequest
    from probcast.predict.runner import PredictResult, create_runner, run
    from probcast.products.table_files import read_predictions, write_predictions
    from probcast.train.loop import train as train_model
    from probcast.verify.evaluate import verify as evaluate


def _load_native_first() -> None:
    """Import ``sqlite3`` and ``pyproj`` so that they bind their own SQLite and PROJ.

    Other wheels bundle older copies: netCDF4 an SQLite 3.26; eccodes, through eckitlib
    (loaded with ``RTLD_GLOBAL`` by findlibs), an SQLite 3.26 and a PROJ 9.8. Loaded first,
    those copies shadow the ones pyproj and Python's sqlite3 were built with: PROJ cannot
    set its database ("no database context") and the process aborts at exit (``free():
    invalid pointer``, status 134/139); MLflow's SQLite store wants >= 3.31. Imported first,
    both bind the right libraries for good (Python loads extensions with ``RTLD_NOW``). If
    such a copy is already mapped (``import eccodes`` before ``import probcast``), they are
    loaded with ``RTLD_DEEPBIND`` so that each still prefers its own dependencies.
    docs/faults.md ("Two PROJ/SQLite copies in one process").
    """
    import os
    import sys

    deep = getattr(os, "RTLD_DEEPBIND", 0)
    shadowed = False
    if deep and not {"sqlite3", "pyproj"} <= set(sys.modules):
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                names = {line.rsplit("/", 1)[-1] for line in f if "/" in line}
            shadowed = any(n.startswith(("libproj", "libsqlite3")) for n in names)
        except OSError:
            pass
    flags = sys.getdlopenflags()
    if shadowed:
        sys.setdlopenflags(flags | deep)
    try:
        import sqlite3  # noqa: F401

        import pyproj  # noqa: F401
    finally:
        sys.setdlopenflags(flags)


_load_native_first()

try:
    __version__ = version("probcast")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_API = {
    "Predictive": "probcast.dists",
    "PredictRequest": "probcast.predict.request",
    "PredictResult": "probcast.predict.runner",
    "create_runner": "probcast.predict.runner",
    "run": "probcast.predict.runner",
    "load_model": "probcast.model.artefact",
    "train_model": "probcast.train.loop",
    "read_predictions": "probcast.products.table_files",
    "write_predictions": "probcast.products.table_files",
    "evaluate": "probcast.verify.evaluate",
    "enable_compile_cache": "probcast.compile_cache",
}
# Subpackages (probcast.train, probcast.verify) become attributes of the package once
# imported, so the functions get names of their own.
_ALIASES = {
    "load_model": "load",
    "train_model": "train",
    "evaluate": "verify",
    "enable_compile_cache": "enable",
}


def __getattr__(name: str) -> object:
    """Import a public name on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'probcast' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_API[name])
    value = getattr(module, _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = [
    "PredictRequest",
    "PredictResult",
    "Predictive",
    "__version__",
    "create_runner",
    "enable_compile_cache",
    "evaluate",
    "load_model",
    "read_predictions",
    "run",
    "train_model",
    "write_predictions",
]
