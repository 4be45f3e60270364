"""The model ``probcast serve`` answers with: loaded once, again when its files change.

The pipeline's ``model`` may be a link (a registry alias, ``/data/models/current``) that a
promotion or rollback moves while requests run. Each request resolves it once
(:func:`os.path.realpath`) and uses that folder for everything: the fingerprint, the
loading and the ``PredictRequest``'s ``model``. Before, the link was read again at each of
those steps, so a promotion during a request answered one model's values under the other's
fingerprint, or refused the request (a ``400`` naming the training data's path, a false
``503`` for a checksum of the other model's files).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from fastapi import HTTPException

from probcast.ops.metrics_http import publish_model


class ServedModel:
    """The model of ``model`` (a workdir, or a link to one), reloaded when it changes.

    Args:
        pipeline: The pipeline's name (label of ``probcast_model_info``).
        model: The pipeline's ``model`` path.
    """

    def __init__(self, pipeline: str, model: Any) -> None:
        self.pipeline = pipeline
        self.path = model
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._model: Any = None

    def folder(self) -> str:
        """The model's folder now: the link resolved (once per request)."""
        return os.path.realpath(os.fspath(self.path))

    def fingerprint(self, folder: str | None = None) -> str:
        """The fingerprint of ``folder`` (default: resolved now); 503 when unreadable."""
        from probcast.predict.grid_output import model_fingerprint

        try:
            return str(model_fingerprint(folder or self.folder()))
        except OSError as err:
            raise HTTPException(503, f"model not readable: {err}") from err

    def get(self) -> tuple[Any, str, str]:
        """``(model, fingerprint, folder)``, all of the one folder the link names now.

        Loaded again when the folder or its fingerprint changed; a model whose files change
        while it loads is a ``503`` (retry), never cached under the wrong fingerprint.
        """
        from probcast.model.artefact import load as load_model

        folder = self.folder()
        current = self.fingerprint(folder)
        key = (folder, current)
        with self._lock:
            if self._key != key:
                try:
                    loaded = load_model(folder)
                except (OSError, ValueError) as err:  # incomplete, damaged, unreadable
                    raise HTTPException(503, f"model not loadable: {err}") from err
                if self.fingerprint(folder) != current:
                    raise HTTPException(503, "model files changed while loading; retry")
                self._key, self._model = key, loaded
                publish_model(self.pipeline, self.path, current)  # a promotion shows in /metrics
            return self._model, current, folder
