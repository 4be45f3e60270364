"""argparse ``type`` functions shared by the command lines (a bad value is a usage error)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def positive(
    kind: type, low: float = 0.0, strict: bool = True, high: float = math.inf
) -> Callable[[str], Any]:
    """An argparse ``type``: a finite ``kind`` above ``low`` (at it too unless ``strict``).

    At most ``high``; the error says what was expected and what was given.
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if (
            value is None
            or not math.isfinite(value)
            or value < low
            or (strict and value == low)
            or value > high
        ):
            bound = f"{'>' if strict else '>='} {low:g}"
            bound += f" and <= {high:g}" if math.isfinite(high) else ""
            what = "a whole number" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse
