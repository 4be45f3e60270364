"""Trained models by workdir: loaded once per process, and always the one on disk now.

:func:`cached_model` keys its cache on the resolved workdir *and* the model's identity on
disk (:func:`disk_identity`, a digest of the completion marker ``COMPLETE.json``, which
holds the sha256 of every artefact file and is written last): a workdir retrained in the
same process (a notebook) is loaded again instead of predicting with the old networks under
the new model's fingerprint. :func:`pinned` makes a model object the caller already holds
(``run(request, model=...)``) the model of its workdir for the duration of one run, so the
grid tasks use that object too. :func:`model_mismatch` tells whether such an object is the
model of a workdir at all.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from probcast.model.artefact import load
from probcast.model.integrity import MARKER
from probcast.model.predictor import TrainedModel

CACHE_SIZE = 4
"""Workdirs whose loaded model is kept (least recently used first out)."""

_LOCK = threading.Lock()
_CACHE: collections.OrderedDict[str, tuple[str, TrainedModel]] = collections.OrderedDict()
_PINNED: dict[str, TrainedModel] = {}


def disk_identity(workdir: str | os.PathLike[str]) -> str:
    """Digest of the completion marker of ``workdir`` (``""`` without one).

    The marker lists the sha256 of every file of the artefact and is written last, so it
    changes with any retraining; reading it (a few kB) is cheap enough for every call.
    """
    try:
        return hashlib.sha256((Path(workdir) / MARKER).read_bytes()).hexdigest()
    except OSError:
        return ""


def cached_model(workdir: str | os.PathLike[str]) -> TrainedModel:
    """The model of ``workdir`` as it is on disk now, loaded once per process and identity.

    A model :func:`pinned` to the workdir is returned as it is. Cluster workers load their
    own.

    Raises:
        FileNotFoundError: ``workdir`` is not a model workdir.
        ValueError: The model is incomplete (no marker: training unfinished) or damaged.
    """
    path = str(Path(workdir).resolve())
    with _LOCK:
        if path in _PINNED:
            return _PINNED[path]
        identity = disk_identity(path)
        hit = _CACHE.get(path)
        if hit is not None and identity and hit[0] == identity:
            _CACHE.move_to_end(path)
            return hit[1]
        _CACHE.pop(path, None)  # a stale model is not kept alive
        model = load(path)
        _CACHE[path] = (identity, model)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return model


@contextlib.contextmanager
def pinned(workdir: str | os.PathLike[str], model: TrainedModel) -> Iterator[None]:
    """Within the block, :func:`cached_model` of ``workdir`` returns ``model`` itself.

    For a model object handed to a run (checked to be the workdir's by
    :func:`model_mismatch`): the run plans and predicts its tiles with that object, not a
    second copy loaded from disk.
    """
    path = str(Path(workdir).resolve())
    with _LOCK:
        before = _PINNED.get(path)
        _PINNED[path] = model
    try:
        yield
    finally:
        with _LOCK:
            if _PINNED.get(path) is model:
                if before is None:
                    del _PINNED[path]
                else:
                    _PINNED[path] = before


def is_workdir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a model artefact (its config, features and metadata files)."""
    return all((Path(path) / n).is_file() for n in ("config.json", "features.json", "meta.json"))


def model_mismatch(model: TrainedModel, workdir: str | os.PathLike[str]) -> str:
    """How ``model`` differs from the model of ``workdir`` (``""``: it is that model).

    Compares the training config and the metadata (heads, data fingerprint, seeds, code
    version), which together identify a training run.
    """
    files = {"config.json": _plain(model.config), "meta.json": model.meta}
    for name, mine in files.items():
        try:
            theirs = json.loads((Path(workdir) / name).read_text())
        except (OSError, ValueError) as err:
            return f"its {name} is unreadable ({err})"
        keys = _differing(mine, theirs)
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            return f"their {name} differ in {', '.join(keys[:3])}{more}"
    return ""


def _plain(config: Any) -> Any:
    return config.to_dict() if hasattr(config, "to_dict") else config


def _differing(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like mappings."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if _same(a, b) else [prefix.rstrip(".") or "<root>"]
    out: list[str] = []
    for key in sorted(set(a) | set(b), key=str):
        if key not in a or key not in b:
            out.append(f"{prefix}{key}")
        else:
            out += _differing(a[key], b[key], f"{prefix}{key}.")
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except ValueError:  # an array-like value: compared element-wise
        return False
