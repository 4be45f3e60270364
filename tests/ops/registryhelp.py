"""Helpers of the model-lifecycle tests: an MLflow registry database created once per session.

Creating an MLflow SQLite store runs its schema migrations (several seconds); the tests copy
one migrated, empty database instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

_TEMPLATE: list[Path] = []


def registry_db(tmp_path_factory, folder: Path) -> Path:
    """An empty, migrated MLflow store at ``folder/mlruns.db`` (copied from a session template)."""
    from probcast.ops.registry import Registry, RegistrySpec

    if not _TEMPLATE:
        root = tmp_path_factory.mktemp("mlflow-template")
        spec = RegistrySpec("template", "champion", f"sqlite:///{root / 'mlruns.db'}", root)
        Registry(spec).exists()  # creates and migrates the database
        _TEMPLATE.append(root / "mlruns.db")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], folder / "mlruns.db")
    return folder / "mlruns.db"


def write_registry_pipeline(root: Path, name: str = "stations", **extra) -> Path:
    """A pipeline file in ``root`` running the registered model ``name``'s champion."""
    data = {
        "model": {"registry": name, "alias": "champion"},
        "input": "inputs/{cycle:%Y%m%d%H}.parquet",
        "complete": {"rule": "stable", "settle_seconds": 0},
        "products": {"output": "pred_{cycle:%Y%m%d%H}.parquet", "quantiles": [0.1, 0.5, 0.9]},
        "destinations": ["published"],
        "lease_seconds": 600,
    }
    data.update(extra)
    path = root / "ops.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
