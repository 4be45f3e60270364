"""The one error type of :mod:`probcast.sources`: a user-facing, one-line message."""

from __future__ import annotations


class SourceError(ValueError):
    """A source, file or configuration problem the user can fix.

    The message is one line naming the file or URL, the variable and what was expected;
    the command prints it without a traceback.
    """


class WrongRunError(SourceError):
    """A file (index or GRIB message) of another run than the cycle asked for.

    The file is refused for that cycle (counted as missing NWP), never written under the
    wrong initialisation time.
    """
