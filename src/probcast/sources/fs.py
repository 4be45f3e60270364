"""fsspec access for every source: local paths, ``s3://``, ``gs://``, ``http(s)://``.

All reads of :mod:`probcast.sources` go through these helpers so that one set of
``storage_options`` (e.g. an S3 endpoint) applies everywhere and errors read the same.

Besides fsspec's own options, ``storage_options`` take three keys of probcast's (removed
before fsspec sees them):

* ``timeout`` (seconds, default :data:`DEFAULT_TIMEOUT_S`): an http(s) or S3 request that
  cannot connect, or receives no byte for that long, fails (fsspec sets none for http).
* ``retries`` (default :data:`DEFAULT_RETRIES`): further attempts after an HTTP 5xx/408/429
  answer, a body cut short or a dropped connection.
* ``retry_wait`` (seconds, default :data:`DEFAULT_RETRY_WAIT_S`): the wait before the first
  retry, doubled before each next one (at most :data:`MAX_RETRY_WAIT_S`).

Every failure is a :class:`SourceError` naming the URL and the reason (HTTP status, timeout);
a 404, or a 403 (what public buckets such as S3 answer for a file not published yet), is
"not found" and never retried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import fsspec

from probcast.sources.errors import SourceError

StorageOptions = Mapping[str, Any] | None

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 2
DEFAULT_RETRY_WAIT_S = 1.0
MAX_RETRY_WAIT_S = 30.0
OWN_KEYS = ("timeout", "retries", "retry_wait")
"""Keys of ``storage_options`` read here, not passed to fsspec."""
GRIB_HEADER = 16
"""Bytes of GRIB section 0 read to find the length of a message (GRIB2: 16, GRIB1: 8)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """Timeout and retries of one set of ``storage_options``."""

    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    retry_wait: float = DEFAULT_RETRY_WAIT_S

    def wait(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""
        return float(min(self.retry_wait * 2**attempt, MAX_RETRY_WAIT_S))


def _number(so: Mapping[str, Any], key: str, default: float, minimum: float, where: str) -> float:
    value = so.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise SourceError(f"{where}.{key}: expected a number >= {minimum:g}; got {value!r}")
    return float(value)


def split_options(
    storage_options: StorageOptions, where: str = "storage_options"
) -> tuple[dict[str, Any], Policy]:
    """``(fsspec options, policy)``: probcast's own keys (:data:`OWN_KEYS`) taken out.

    Raises:
        SourceError: If ``timeout``, ``retries`` or ``retry_wait`` is not a valid number
            (the message starts with ``where``).
    """
    so = dict(storage_options or {})
    timeout = _number(so, "timeout", DEFAULT_TIMEOUT_S, 0.001, where)
    retries = _number(so, "retries", DEFAULT_RETRIES, 0, where)
    if retries != int(retries) or retries > 10:
        raise SourceError(f"{where}.retries: expected a whole number 0-10; got {retries:g}")
    wait = _number(so, "retry_wait", DEFAULT_RETRY_WAIT_S, 0, where)
    return {k: v for k, v in so.items() if k not in OWN_KEYS}, Policy(timeout, int(retries), wait)


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def _with_timeout(url: str, opts: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``opts`` with ``timeout`` set for http(s) (aiohttp) and S3 (botocore)."""
    proto = _protocol(url)
    if proto in ("http", "https"):
        import aiohttp

        client = dict(opts.get("client_kwargs") or {})
        client.setdefault(
            "timeout", aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        )
        return {**opts, "client_kwargs": client}
    if proto in ("s3", "s3a"):
        config = dict(opts.get("config_kwargs") or {})
        config.setdefault("connect_timeout", timeout)
        config.setdefault("read_timeout", timeout)
        return {**opts, "config_kwargs": config}
    return opts


def filesystem(url: str, storage_options: StorageOptions = None) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` for ``url`` with ``storage_options`` (and a timeout)."""
    opts, policy = split_options(storage_options)
    try:
        fs, path = fsspec.core.url_to_fs(url, **_with_timeout(url, opts, policy.timeout))
    except (ImportError, ValueError) as err:
        raise SourceError(f"{url}: cannot open this location ({err})") from None
    return fs, path


def _classify(err: BaseException, policy: Policy) -> tuple[bool, str] | None:
    """``(retry?, reason)`` of a read error, or None when it is not an access error."""
    status = getattr(err, "status", None)
    aiohttp = sys.modules.get("aiohttp")
    if isinstance(err, FileNotFoundError):
        return False, f"not found or not readable (FileNotFoundError: {err})"
    if isinstance(err, TimeoutError):
        return False, f"no answer within {policy.timeout:g} s (storage_options.timeout)"
    if isinstance(status, int) and aiohttp and isinstance(err, aiohttp.ClientResponseError):
        what = f"HTTP {status} {getattr(err, 'message', '')}".strip()
        if status == 403:  # S3/GCS answer for a key that is not there (yet)
            return False, f"not found or not readable ({what}: not published yet?)"
        if status == 416:
            return False, f"{what}: the range is past the end of the file (index and file differ)"
        return status >= 500 or status in (408, 429), what
    if aiohttp and isinstance(err, aiohttp.ClientPayloadError):
        return True, f"the answer was cut short ({' '.join(str(err).split())[:160]})"
    if isinstance(err, ConnectionError) or (
        aiohttp and isinstance(err, aiohttp.ClientConnectionError)
    ):
        return True, f"connection failed ({type(err).__name__}: {err})"
    if isinstance(err, OSError) or (aiohttp and isinstance(err, aiohttp.ClientError)):
        return False, f"not found or not readable ({type(err).__name__}: {err})"
    return None


def with_retries(url: str, policy: Policy, call: Callable[[], T]) -> T:
    """``call()``, retried on transient errors; any access error becomes a SourceError."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as err:
            found = _classify(err, policy)
            if found is None:
                raise
            retry, why = found
            if not retry or attempt >= policy.retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise SourceError(f"{url}: {why}{tries}") from None
        time.sleep(policy.wait(attempt))
        attempt += 1


def read_bytes(url: str, storage_options: StorageOptions = None) -> bytes:
    """Read a whole file (transient errors retried, see the module docstring)."""
    fs, path = filesystem(url, storage_options)
    policy = split_options(storage_options)[1]
    return with_retries(url, policy, lambda: bytes(fs.cat_file(path)))


def grib_length(head: bytes, url: str, start: int) -> int:
    """Total length of the GRIB message whose section 0 is ``head`` (at byte ``start``).

    GRIB2: 8-byte length at bytes 8-15; GRIB1: 3 bytes at 4-6 (edition at byte 7).

    Raises:
        SourceError: If ``head`` is not the start of a GRIB message.
    """
    if not head:
        raise SourceError(
            f"{url}: the file ends before byte {start} named by its index (the file is "
            "still being written, or the index is of another file)"
        )
    if head[:4] != b"GRIB" or len(head) < 8 or head[7] not in (1, 2):
        raise SourceError(
            f"{url}: byte {start} is not the start of a GRIB message (got {head[:8]!r}); "
            "the index does not match the file"
        )
    if head[7] == 1:
        length = int.from_bytes(head[4:7], "big")
        if length & 0x800000:  # ECMWF's large GRIB1 messages: length not in section 0
            raise SourceError(
                f"{url}: the GRIB1 message at byte {start} is over 8 MB; its length is not "
                "in section 0: give its length in the index"
            )
        return length
    if len(head) < GRIB_HEADER:
        raise SourceError(f"{url}: the file ends inside the GRIB message at byte {start}")
    return int.from_bytes(head[8:16], "big")


def read_ranges(
    url: str, ranges: Sequence[tuple[int, int | None]], storage_options: StorageOptions = None
) -> list[bytes]:
    """Read byte ranges ``[start, end)`` of one file (``end`` None: the one GRIB message there).

    Remote filesystems send one HTTP ``Range`` request per range; this is how only the
    GRIB messages named by an index are transferred. Every answer must have exactly the
    length asked for, so a server that ignores ``Range`` (HTTP 200 with the whole file) is
    refused. An open range (the last message of a wgrib2 ``.idx``) is read as Herbie
    does: its length is taken from the message's section 0 (first :data:`GRIB_HEADER`
    bytes), then exactly that message is read and must end with ``7777``.

    Raises:
        SourceError: Naming the URL and the reason (not found, HTTP status, timeout,
            wrong length, not a GRIB message).
    """
    fs, path = filesystem(url, storage_options)
    policy = split_options(storage_options)[1]

    def cat(start: int, end: int) -> bytes:
        return with_retries(url, policy, lambda: bytes(fs.cat_file(path, start=start, end=end)))

    out = []
    for start, end in ranges:
        whole = end is None
        if end is None:
            head = cat(start, start + GRIB_HEADER)
            if len(head) > GRIB_HEADER:
                raise _wrong_length(url, start, start + GRIB_HEADER, len(head))
            end = start + grib_length(head, url, start)
        blob = cat(start, end)
        if len(blob) != end - start:
            raise _wrong_length(url, start, end, len(blob))
        if whole and blob[-4:] != b"7777":
            raise SourceError(
                f"{url}: the GRIB message at byte {start} does not end with 7777 (cut short?)"
            )
        out.append(blob)
    return out


def _wrong_length(url: str, start: int, end: int, got: int) -> SourceError:
    return SourceError(
        f"{url}: asked for bytes {start}-{end - 1}, got {got} bytes; the server ignores "
        "Range requests (HTTP 200 with the whole file) or the index does not match the file"
    )


def exists(url: str, storage_options: StorageOptions = None) -> bool:
    """Whether ``url`` exists (False on any access error)."""
    try:
        fs, path = filesystem(url, storage_options)
        policy = split_options(storage_options)[1]
        return bool(with_retries(url, policy, lambda: fs.exists(path)))
    except (SourceError, OSError):
        return False


def _glob(item: str, storage_options: StorageOptions, policy: Policy) -> list[str]:
    fs, path = filesystem(item, storage_options)
    return list(with_retries(item, policy, lambda: fs.glob(path)))


def expand(paths: str | Sequence[str], storage_options: StorageOptions = None) -> list[str]:
    """Expand globs in ``paths`` (a string or a list) into a sorted list of URLs.

    Raises:
        SourceError: If a pattern matches nothing or cannot be listed.
    """
    items = [paths] if isinstance(paths, str) else list(paths)
    policy = split_options(storage_options)[1]
    urls: list[str] = []
    for item in items:
        if not any(ch in item for ch in "*?["):
            urls.append(item)
            continue
        found = sorted(_glob(item, storage_options, policy))
        if not found:
            raise SourceError(f"{item}: the pattern matches no file")
        proto = item.split("://", 1)[0] + "://" if "://" in item else ""
        urls += [p if "://" in p or not proto else proto + p.lstrip("/") for p in found]
    return urls
