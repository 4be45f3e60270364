"""The ``probcast`` command: one thin dispatcher to each stage's own command module.

Every subcommand lives next to the code it drives (``probcast.<stage>.cli``) and exposes
``main(argv: list[str]) -> int``; this module only routes to it.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("probcast.data.cli", "list, fetch and prepare registry datasets"),
    "train": ("probcast.train.cli", "train a model from an ml_collections config"),
    "predict": ("probcast.predict.cli", "predict members/quantiles/probabilities"),
    "verify": ("probcast.verify.cli", "score forecasts against truth and write a report"),
    "demo": ("probcast.bench.demo", "run the whole chain on a benchmark dataset"),
}


def _usage() -> str:
    lines = ["usage: probcast COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'probcast COMMAND --help' for the command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probcast`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from probcast import __version__

        print(f"probcast {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"probcast: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
