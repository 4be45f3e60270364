"""Integrity of the model artefact: a completion marker with checksums, and secret redaction.

Training writes ``<workdir>/COMPLETE.json`` last, holding the sha256 of every file
prediction reads (the run's JSON files and every file of the seed networks' ``best/``
checkpoints). :func:`verify` refuses a workdir without the marker (a training that was
killed or is still running) or whose files differ from it (a corrupted or edited
checkpoint), so an unfinished or damaged model is never used silently.

:func:`redact` hides credentials in URIs (``postgresql://user:secret@host`` ->
``postgresql://user:***@host``) before a config or a log line leaves the process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from probcast import io
from probcast.io import TMP_MARK, write_json

MARKER = "COMPLETE.json"
"""Name of the completion marker in a model workdir."""

RUN_FILES = (
    "config.json",
    "features.json",
    "meta.json",
    "summary.json",
    "calibration.json",
    "blend.json",
    "domain.json",
)
"""The artefact's JSON files (those present are checksummed)."""

MARKER_VERSION = 1

_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@:\s]*)(?P<pw>:[^/@\s]*)?@"
)
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:password|sslpassword|passwd|pwd|token|secret|api_?key|access_?key|sig|signature"
    r"|credential|x-amz-signature|x-amz-credential)=)[^&;#\s\"']*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Replace credentials in every URI of ``text`` by ``***``.

    A password after ``user:`` is hidden (the user name is kept); a user part alone (a
    token, ``https://TOKEN@host``) is hidden; so are values of query keys such as
    ``password``, ``token``, ``secret`` or ``signature``.

    Args:
        text: Any string (a URI, a log line, JSON text).

    Returns:
        The text with the secrets replaced.
    """

    def userinfo(m: re.Match[str]) -> str:
        user = m.group("user")
        if m.group("pw") is not None and user:
            return f"{m.group('scheme')}{user}:***@"
        return f"{m.group('scheme')}***@"

    return _QUERY_SECRET.sub(r"\g<key>***", _USERINFO.sub(userinfo, text))


def redact_tree(data: Any) -> Any:
    """:func:`redact` applied to every string of a nested dict / list structure."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {k: redact_tree(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_tree(v) for v in data]
    return data


def artefact_files(workdir: Path) -> list[str]:
    """Relative paths (POSIX) of the files a complete artefact is checked on.

    The run's JSON files that exist and every file under ``seed_<i>/best/``; temporaries
    of :mod:`probcast.io` are left out.
    """
    workdir = Path(workdir)
    names = [n for n in RUN_FILES if (workdir / n).is_file()]
    for best in sorted(workdir.glob("seed_*/best")):
        for path in sorted(best.rglob("*")):
            if path.is_file() and TMP_MARK not in path.name:
                names.append(path.relative_to(workdir).as_posix())
    return names


def write_marker(workdir: Path) -> Path:
    """Checksum the artefact's files and write the completion marker (the last write)."""
    workdir = Path(workdir)
    files = {name: io.sha256_file(workdir / name) for name in artefact_files(workdir)}
    return write_json(workdir / MARKER, {"version": MARKER_VERSION, "sha256": files})


def clear_marker(workdir: Path) -> None:
    """Remove the marker: the workdir is being (re)written and is not a usable model."""
    (Path(workdir) / MARKER).unlink(missing_ok=True)


def verify(workdir: Path) -> None:
    """Check that ``workdir`` holds a complete, unmodified artefact.

    Raises:
        ValueError: Naming the workdir and the file: no marker (training unfinished),
            a listed file missing or different from its checksum, or an artefact file
            that the marker does not list.
    """
    workdir = Path(workdir)
    marker = workdir / MARKER
    if not marker.is_file():
        raise ValueError(
            f"{workdir}: incomplete model (no {MARKER}): its training was interrupted or is "
            f"still running; rerun the same `probcast train` command to finish it"
        )
    try:
        listed = dict(json.loads(marker.read_text())["sha256"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{workdir}: {MARKER} is unreadable ({err})") from None
    for name, expected in listed.items():
        path = workdir / name
        if not path.is_file():
            raise ValueError(f"{workdir}: {name} is missing (listed in {MARKER})")
        if io.sha256_file(path) != expected:
            raise ValueError(
                f"{workdir}: {name} does not match its checksum in {MARKER} (corrupted or "
                f"modified after training); retrain into a new workdir"
            )
    extra = _unlisted(artefact_files(workdir), listed)
    if extra:
        raise ValueError(f"{workdir}: {extra[0]} is not listed in {MARKER} (added after training)")


def _unlisted(names: Iterable[str], listed: dict[str, str]) -> list[str]:
    return [n for n in names if n not in listed]
