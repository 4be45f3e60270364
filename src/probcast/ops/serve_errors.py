"""The ``422`` of ``probcast serve`` for a request of the wrong shape, always JSON, always small.

FastAPI's own handler echoes each field error's ``input`` back: a ``NaN``, ``Infinity`` or
``1e400`` in a JSON body (a number JSON cannot write back) made it fail with a 500, and a
4 MB body of wrong values came back as a 24 MB answer. :func:`validation_error` answers
the first :data:`MAX_ERRORS` errors, each input written as JSON can (``"nan"``, ``"inf"``)
and cut to :data:`MAX_INPUT_CHARS` characters (lists and mappings to their first
:data:`MAX_ITEMS` items).
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ERRORS = 20
"""Field errors answered (then one line counting the others)."""
MAX_INPUT_CHARS = 200
"""Characters of a text (or of one error's input written as JSON) answered."""
MAX_ITEMS = 10
"""Items of a list or mapping answered."""
_DEPTH = 4


def _cut(text: str) -> str:
    if len(text) <= MAX_INPUT_CHARS:
        return text
    return f"{text[:MAX_INPUT_CHARS]}... ({len(text)} characters)"


def safe(value: Any, depth: int = 0) -> Any:
    """``value`` as small, finite JSON: non-finite numbers as text, long things cut."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return value if abs(value) < 10**15 else _cut(str(value))
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, bytes):
        return _cut(value.decode("utf-8", "replace"))
    if depth >= _DEPTH:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        out = {_cut(str(k)): safe(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        shown = [safe(v, depth + 1) for v in seq[:MAX_ITEMS]]
        if len(seq) > MAX_ITEMS:
            shown.append(f"... {len(seq) - MAX_ITEMS} more")
        return shown
    return _cut(str(value))


def _error(err: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": _cut(str(err.get("type", "value_error"))),
        "loc": [p if isinstance(p, int) else _cut(str(p)) for p in err.get("loc", ())][:20],
        "msg": _cut(str(err.get("msg", ""))),
    }
    if "input" in err:
        given = safe(err["input"])
        text = json.dumps(given, allow_nan=False)
        out["input"] = given if len(text) <= 4 * MAX_INPUT_CHARS else _cut(text)
    if isinstance(err.get("ctx"), dict):
        out["ctx"] = safe(err["ctx"])
    return out


def errors_of(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The ``detail`` list of a ``422``: at most :data:`MAX_ERRORS` errors, then a count."""
    errors = list(exc.errors())
    shown = [_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        shown.append({"type": "too_many_errors", "loc": [], "msg": f"and {more} more errors"})
    return shown


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """``422 {"detail": [...]}`` for a request FastAPI's validation refused."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": errors_of(exc)})
