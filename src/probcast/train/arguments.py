"""The arguments of :func:`probcast.train.loop.train` (``probcast.train_model``), checked.

A plain dict config (``config.to_dict()``) is made a ``ConfigDict``; a config or workdir of
another type is a ``TypeError`` naming the argument, a workdir that is a file a
``ValueError``; a ``data.split_date`` that leaves too little data is a ``DataError`` naming
it (before, the split itself said only "need at least two initialisation times").
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, TypeAlias

import ml_collections

from probcast.train.check import DataError

ConfigLike: TypeAlias = ml_collections.ConfigDict | Mapping[str, Any]
"""What :func:`probcast.train.loop.train` takes as its config."""


def train_arguments(config: Any, workdir: Any) -> tuple[ml_collections.ConfigDict, Path]:
    """``train``'s arguments checked: a ConfigDict (from a plain dict too) and a folder path.

    Raises:
        TypeError: A config that is no mapping, a workdir that is no path.
        ValueError: A workdir that is an existing file.
    """
    if not isinstance(config, ml_collections.ConfigDict):
        if not isinstance(config, Mapping):
            raise TypeError(
                "config: expected an ml_collections.ConfigDict (probcast.configs.tiny."
                f"get_config()) or a dict of one, got {type(config).__name__}"
            )
        config = ml_collections.ConfigDict(dict(config))
    if not isinstance(workdir, (str, PathLike)) or not str(workdir):
        raise TypeError(f"workdir: expected a folder path (str or Path), got {workdir!r}")
    folder = Path(workdir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"workdir {folder}: is a file; name a folder (created if missing)")
    return config, folder


def enough_before_split(table: Any, config: ml_collections.ConfigDict, source: str) -> None:
    """Refuse a table (or a ``data.split_date``) that leaves too little to train on, naming it.

    Raises:
        DataError: No row, or (validation held out) one initialisation time before it.
    """
    date = str(config.data.split_date)
    inits = int(table["init_time"].nunique()) if "init_time" in table else len(table)
    held_out = float(config.data.val_fraction) > 0 or int(config.train.get("cv_folds", 0)) > 0
    if inits == 0 or (inits < 2 and held_out):
        why = " (validation holds the last ones out)" if held_out else ""
        if date:
            raise DataError(
                f"{source}: data.split_date={date} leaves {len(table)} rows ({inits} "
                "initialisation times) initialised and valid before it; training needs at "
                f"least {2 if held_out else 1}{why}: set a later data.split_date, or '' to "
                "train on every row"
            )
        raise DataError(
            f"{source}: {len(table)} rows of {inits} initialisation time(s); training needs "
            f"at least {2 if held_out else 1}{why}: add earlier runs, or set "
            "data.val_fraction=0 and train.cv_folds=0 to train without held-out data"
        )
