"""Help text of the operational commands from their module docstrings, without RST markup."""

from __future__ import annotations

import argparse
import re

_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``")


def plain(text: str) -> str:
    """``text`` without reStructuredText markup: ````x```` -> ``x``, ``:mod:`a.b``` -> ``a.b``.

    A ``::`` that introduces a literal block becomes ``:`` (``"like this::"`` -> ``"like
    this:"``; a ``::`` alone on its line is dropped).
    """
    text = _ROLE.sub(lambda m: m.group(1).strip(), text)
    text = _LITERAL.sub(r"\1", text)
    text = re.sub(r"(?m)^\s*::\s*$\n?", "", text)
    return re.sub(r"(?<=\S)::(?=\s|$)", ":", text)


def parser_text(doc: str | None) -> tuple[str, str]:
    """``description`` (the first line) and ``epilog`` (the rest) of a command's parser."""
    head, _, rest = (doc or "").strip().partition("\n")
    return plain(head), plain(rest.strip("\n"))


def command_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: its docstring's first line as description, the rest as epilog."""
    description, epilog = parser_text(doc)
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
