"""The model registry: immutable model versions with ``champion``/``challenger`` aliases.

MLflow's model registry (``mlflow.MlflowClient``) in an embedded SQLite store by default
(``sqlite:///<pipeline folder>/mlruns.db``, the store the trainings track to), PostgreSQL or
an MLflow server by URL. A registered version points at an immutable, content-addressed copy
of the model work directory (``<store>/<name>/<digest>/``, files read-only) and carries the
sha256 of its ``COMPLETE.json`` as the tag ``probcast.digest``: resolving an alias checks
that digest and the artefact's own checksums, so a version always loads exactly what was
registered.

The pipeline file names a registered model instead of a work directory::

    model: {registry: stations, alias: champion}   # uri: sqlite:///mlruns.db, store: models

Aliases: ``champion`` (what the cycles run), ``challenger`` (the newest candidate). Every
promotion appends to the model's tag ``probcast.champion_history``; a rollback moves the
champion back to the previous entry and records it on both versions. After each alias
change, ``<store>/<name>@<alias>`` (a symbolic link, swapped atomically) points at the
version's folder, for readers that take a path (``probcast serve``, ``probcast monitor``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probcast import io
from probcast.model import integrity
from probcast.model.integrity import redact

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
DIGEST_TAG = "probcast.digest"
HISTORY_TAG = "probcast.champion_history"
_KEYS = frozenset({"registry", "alias", "uri", "store"})
_HISTORY_KEEP = 100


class RegistryError(ValueError):
    """A registry request that cannot be met (the message says what and where)."""


@dataclasses.dataclass(frozen=True)
class RegistrySpec:
    """Where a pipeline's model lives in the registry.

    Attributes:
        name: The registered model's name.
        alias: The alias the cycles run (``champion`` by default).
        uri: MLflow tracking/registry URI (``sqlite:///...`` by default).
        store: Folder of the immutable version copies.
    """

    name: str
    alias: str
    uri: str
    store: Path

    def link(self, alias: str | None = None) -> Path:
        """``<store>/<name>@<alias>``: the link to the version an alias points at."""
        return self.store / f"{self.name}@{alias or self.alias}"


def parse_model_block(value: Any, root: Path, where: str) -> RegistrySpec:
    """The ``model: {registry: NAME, alias: ..., uri: ..., store: ...}`` block of a pipeline.

    Raises:
        RegistryError: Naming ``where`` and the field, for unknown keys or a missing name.
    """
    if not isinstance(value, Mapping):
        raise RegistryError(f"{where}: model must be a workdir or {{registry: NAME, ...}}")
    unknown = set(value) - _KEYS
    if unknown:
        raise RegistryError(
            f"{where}: model: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}"
        )
    name = str(value.get("registry") or "").strip()
    if not name or "/" in name or "@" in name:
        raise RegistryError(f"{where}: model.registry must be a model name, got {name!r}")
    alias = str(value.get("alias") or "champion")
    uri = str(value.get("uri") or f"sqlite:///{root / 'mlruns.db'}")
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{root / uri.removeprefix('sqlite:///')}"
    store = Path(str(value.get("store") or "models")).expanduser()
    return RegistrySpec(name, alias, uri, store if store.is_absolute() else root / store)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A version an alias points at: number, folder, ``COMPLETE.json`` digest."""

    name: str
    alias: str
    version: str
    workdir: Path
    digest: str


def digest_of(workdir: Path) -> str:
    """sha256 of the work directory's ``COMPLETE.json`` (checked against its files first)."""
    integrity.verify(workdir)
    return io.sha256_file(Path(workdir) / integrity.MARKER)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy_artefact(workdir: Path, target: Path) -> None:
    """Copy the artefact's checked files into ``target`` (atomically), read-only."""
    if target.is_dir():
        integrity.verify(target)  # same digest: the same content, registered before
        return
    staging = io.temp_name(target)
    staging.mkdir(parents=True)
    try:
        listed = json.loads((workdir / integrity.MARKER).read_text())["sha256"]
        for name in [*listed, integrity.MARKER]:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workdir / name, staging / name)
        integrity.verify(staging)
        for path in staging.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # not a concurrent registration of the same content
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (a new symbolic link renamed over the old one)."""
    tmp = io.temp_name(link)
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, link)


class Registry:
    """One registered model of an MLflow registry (see the module docstring).

    Args:
        spec: Name, alias, URI and store folder.
    """

    def __init__(self, spec: RegistrySpec) -> None:
        from probcast.train.tracking import disable_telemetry

        disable_telemetry()  # before mlflow is first imported
        import mlflow
        from mlflow.exceptions import MlflowException

        self.spec = spec
        self.name = spec.name
        self._error = MlflowException
        if spec.uri.startswith("sqlite:///"):
            Path(spec.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = mlflow.MlflowClient(tracking_uri=spec.uri, registry_uri=spec.uri)

    # -- reading ----------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the model is registered."""
        try:
            self.client.get_registered_model(self.name)
        except self._error:
            return False
        return True

    def tags(self) -> dict[str, str]:
        """The registered model's tags (``{}`` when it is not registered)."""
        try:
            return dict(self.client.get_registered_model(self.name).tags)
        except self._error:
            return {}

    def aliases(self) -> dict[str, str]:
        """``{alias: version}``."""
        try:
            found = self.client.get_registered_model(self.name).aliases
        except self._error:
            return {}
        return {str(k): str(v) for k, v in dict(found).items()}

    def version_tags(self, version: str) -> dict[str, str]:
        """The tags of one version."""
        return dict(self._version(version).tags)

    def versions(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``version``, ``aliases``, ``source``, ``created``, tags."""
        if not self.exists():
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in self.aliases().items():
            by_version.setdefault(version, []).append(alias)
        out = []
        for mv in self.client.search_model_versions(f"name='{self.name}'"):
            out.append(
                {
                    "version": str(mv.version),
                    "aliases": sorted(by_version.get(str(mv.version), [])),
                    "source": mv.source,
                    "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                    "tags": dict(mv.tags),
                }
            )
        return sorted(out, key=lambda v: int(v["version"]))

    def history(self) -> list[str]:
        """The champions in the order they were promoted (rolled-back ones removed)."""
        raw = self.tags().get(HISTORY_TAG)
        return [str(v) for v in json.loads(raw)] if raw else []

    def resolve(self, alias: str | None = None) -> Resolved:
        """The version ``alias`` points at, its folder checked against its digest.

        Raises:
            RegistryError: No such alias, or the folder does not hold what was registered.
        """
        alias = alias or self.spec.alias
        try:
            mv = self.client.get_model_version_by_alias(self.name, alias)
        except self._error as err:
            raise RegistryError(
                f"registry {redact(self.spec.uri)}: model {self.name!r} has no version with alias "
                f"{alias!r} (register one: probcast model register WORKDIR --promote)"
            ) from err
        workdir, actual = self._checked(mv)
        return Resolved(self.name, alias, str(mv.version), workdir, actual)

    def _checked(self, mv: Any) -> tuple[Path, str]:
        """A version's folder and digest, checked against what was registered.

        Raises:
            RegistryError: The folder is damaged, incomplete or modified.
        """
        workdir = Path(str(mv.source))
        expected = dict(mv.tags).get(DIGEST_TAG, "")
        try:
            actual = digest_of(workdir)
        except (OSError, ValueError) as err:
            raise RegistryError(f"{self.name} version {mv.version} at {workdir}: {err}") from err
        if actual != expected:
            raise RegistryError(
                f"{self.name} version {mv.version} at {workdir}: COMPLETE.json digest {actual} "
                f"differs from the registered {expected!r} (modified after registration)"
            )
        return workdir, actual

    def _version(self, version: str) -> Any:
        try:
            return self.client.get_model_version(self.name, str(version))
        except self._error as err:
            raise RegistryError(f"model {self.name!r} has no version {version!r}") from err

    # -- writing ----------------------------------------------------------------------------

    def register(
        self, workdir: str | Path, tags: Mapping[str, Any] | None = None, run_id: str | None = None
    ) -> str:
        """Copy a complete model into the store and register it as a new version.

        The new version gets the ``challenger`` alias. Returns its number.

        Raises:
            RegistryError: If ``workdir`` is not a complete, unmodified model.
        """
        workdir = Path(workdir).resolve()
        from probcast.ops.pipeline_check import workdir_problem

        why = workdir_problem(workdir)
        if why:
            raise RegistryError(f"cannot register: {why}")
        try:
            digest = digest_of(workdir)
        except (OSError, ValueError) as err:
            raise RegistryError(f"cannot register {workdir}: {err}") from err
        target = self.spec.store / self.name / f"sha256-{digest[:24]}"
        self.spec.store.mkdir(parents=True, exist_ok=True)
        _copy_artefact(workdir, target)
        if not self.exists():
            self.client.create_registered_model(
                self.name, description="probcast model (probcast model list)"
            )
        all_tags = {DIGEST_TAG: digest, "probcast.trained_in": str(workdir)}
        all_tags["probcast.registered_at"] = _now()
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        mv = self.client.create_model_version(
            self.name, source=str(target), run_id=run_id, tags=all_tags
        )
        version = str(mv.version)
        self._set_alias("challenger", version)
        log.info("registered %s version %s (%s)", self.name, version, target)
        return version

    def tag_version(self, version: str, tags: Mapping[str, Any]) -> None:
        """Add or overwrite tags of one version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, str(value))

    def tag_model(self, key: str, value: str) -> None:
        """Set a tag of the registered model."""
        self.client.set_registered_model_tag(self.name, key, value)

    def promote(self, version: str, by: str = "manual", reason: str = "") -> str:
        """Make ``version`` the champion (recorded on it and in the history); returns it.

        Raises:
            RegistryError: No such version, or its folder is damaged or modified (the
                champion is left where it was).
        """
        mv = self._version(version)
        self._checked(mv)
        version = str(mv.version)
        if self.aliases().get("champion") == version:
            return version
        history = [v for v in self.history() if v != version] + [version]
        self._set_alias("champion", version)
        self.tag_model(HISTORY_TAG, json.dumps(history[-_HISTORY_KEEP:]))
        self.tag_version(version, {"probcast.promoted_at": _now(), "probcast.promoted_by": by})
        if reason:
            self.tag_version(version, {"probcast.promoted_reason": reason})
        log.info("%s: version %s is the champion (%s)", self.name, version, by)
        return version

    def rollback(self, reason: str = "") -> tuple[str, str]:
        """Move the champion back to the previous one; returns ``(from, to)``.

        Raises:
            RegistryError: If there is no champion or no earlier one.
        """
        current = self.aliases().get("champion")
        if current is None:
            raise RegistryError(f"model {self.name!r} has no champion to roll back")
        history = self.history()
        if not history or history[-1] != current:
            history.append(current)
        earlier = history[:-1]
        if not earlier:
            raise RegistryError(
                f"model {self.name!r}: version {current} is the first champion; nothing to roll "
                f"back to (promote a version instead)"
            )
        target = earlier[-1]
        self._checked(self._version(target))  # never back onto a damaged version
        self._set_alias("champion", target)
        self.tag_model(HISTORY_TAG, json.dumps(earlier))
        when = _now()
        self.tag_version(
            current, {"probcast.rolled_back_at": when, "probcast.rolled_back_to": target}
        )
        self.tag_version(target, {"probcast.restored_at": when, "probcast.restored_from": current})
        if reason:
            self.tag_version(current, {"probcast.rollback_reason": reason})
        log.warning("%s: champion rolled back from version %s to %s", self.name, current, target)
        return current, target

    def _set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)
        source = Path(self._version(version).source)
        try:
            _swap_link(self.spec.link(alias), source)
        except OSError as err:  # the registry is the truth; the link only helps path readers
            log.warning("could not update %s: %s", self.spec.link(alias), err)
