"""A registry reachable at all, checked before MLflow connects to it (and retries for minutes).

MLflow retries an unreachable tracking server 7 times with back-off (about 100 s) and its
SQLAlchemy store waits on the database's own connect timeout; ``probcast model`` and every
cycle that resolves a registered model try the registry once, quickly, instead, and name
it (URI redacted) and where it was set in the error.
"""

from __future__ import annotations

import os
from pathlib import Path

from probcast.model.integrity import redact
from probcast.ops.registry import RegistryError, RegistrySpec

MLFLOW_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
"""MLflow's documented bounds on a server's retries (defaults 7 and 120 s), unless set."""
CONNECT_TIMEOUT = 10
"""Seconds to connect to a database registry (PostgreSQL, MySQL) before giving up."""


def mlflow_bounds() -> None:
    """Set :data:`MLFLOW_HTTP` in the environment where the user has not set them."""
    for key, value in MLFLOW_HTTP.items():
        os.environ.setdefault(key, value)


def check_reachable(spec: RegistrySpec, where: str, *, must_exist: bool) -> None:
    """Refuse a registry that is not there, before MLflow creates or retries it.

    A SQLite file that does not exist (``must_exist``: reading or changing aliases), or a
    database that cannot be connected to within :data:`CONNECT_TIMEOUT` seconds.

    Raises:
        RegistryError: Naming ``where`` (the key or option of the URI) and the URI.
    """
    import sqlalchemy as sa

    uri = spec.uri
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if must_exist and not path.is_file():
            raise RegistryError(
                f"{where}: no registry at {path} (the file does not exist, nothing is "
                "registered there): give the registry's URI, or register a model first"
            )
        return
    scheme = uri.partition(":")[0].partition("+")[0]
    if scheme in ("http", "https"):
        _check_server(uri, where)
    if scheme not in ("postgresql", "mysql", "mssql"):
        return
    args = {"connect_timeout": CONNECT_TIMEOUT} if scheme != "mssql" else {}
    try:
        engine = sa.create_engine(uri, connect_args=args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (sa.exc.SQLAlchemyError, ImportError) as err:
        cause = " ".join(str(getattr(err, "orig", None) or err).split())
        raise RegistryError(f"{where}: cannot reach the registry {redact(uri)}: {cause}") from None


def _check_server(uri: str, where: str) -> None:
    """An MLflow server that answers at all (any HTTP status), else :class:`RegistryError`."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=CONNECT_TIMEOUT):
            pass
    except urllib.error.HTTPError:
        return  # it answered (a proxy's 401 or 404 included): MLflow says the rest
    except (urllib.error.URLError, OSError) as err:
        cause = getattr(err, "reason", err)
        raise RegistryError(f"{where}: cannot reach the registry {redact(uri)}: {cause}") from None
