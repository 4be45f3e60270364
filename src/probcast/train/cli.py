"""``probcast train --config=NAME_OR_PATH --workdir=DIR [--config.section.field=value ...]``.

``--config`` is a bundled config name (``default``, ``tiny``, ``gpu_bf16``,
``norway_precip``) or a path to a Python file with ``get_config()``; any field can be
overridden on the command line (ml_collections ``config_flags``). Rerunning the same command
resumes an interrupted run.

The help lists every config field with its value and a one-line meaning, read from the
comments of ``probcast/configs/default.py`` (a field's trailing comment, else the comment
lines just above it).

Every local device is used (data parallel); ``--coordinator=HOST:PORT --num-processes=N
--process-id=I`` (or their environment variables) make this process one of ``N`` that train
together over all their devices (:mod:`probcast.train.distributed`).
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import io
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any

from probcast.configs import CONFIG_DIR, available, resolve
from probcast.io import describe
from probcast.train import distributed
from probcast.train.check import ConfigError, check_config, data_problem
from probcast.train.tracking import flatten

USAGE = (
    "usage: probcast train --config=NAME_OR_PATH --workdir=DIR [--config.SECTION.FIELD=VALUE ...]"
)
HELP_WIDTH = 100
DESCRIPTION = """\
Train a model on a station table and write a self-describing model directory (weights,
normalisation, features, config, data fingerprint). Rerunning the same command resumes an
interrupted run.

options:
  --config=NAME_OR_PATH   bundled config ({names})
                          or a Python file with get_config()
  --workdir=DIR           directory of checkpoints and the model artefact
  --config.S.F=VALUE      override field F of section S (repeatable), e.g.
                          --config.data.path=train.parquet --config.data.targets=t2m,tp
  -h, --help              this help; with --config=NAME, that config's values

example:
  probcast train --config=default --workdir=runs/mine \\
      --config.data.path=tables/mine/train.parquet --config.data.targets=tp
"""


def _comments(source: str) -> dict[int, str]:
    """Comment text by line number (without the ``#`` and pragmas such as ``noqa``)."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if not text.startswith(("noqa", "type:", "fmt:")):
                out[tok.start[0]] = text
    return out


def field_docs(path: Path = CONFIG_DIR / "default.py") -> dict[str, str]:
    """One-line meaning of each ``section.field`` assigned in a config file.

    Args:
        path: A config module written like ``configs/default.py``
            (``config.data = data = ConfigDict()`` then ``data.path = ""  # meaning``).

    Returns:
        ``{"data.path": "meaning", ...}`` in file order; ``""`` for an undocumented field.
    """
    source = path.read_text()
    comments = _comments(source)
    lines = source.splitlines()
    sections: dict[str, str] = {}
    docs: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assign):
            continue
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        attrs = [t for t in node.targets if isinstance(t, ast.Attribute)]
        for attr in attrs:
            owner = attr.value.id if isinstance(attr.value, ast.Name) else ""
            if owner == "config":  # config.data = data = ConfigDict()
                sections.update(dict.fromkeys(names, attr.attr))
            elif owner in sections:
                docs[f"{sections[owner]}.{attr.attr}"] = _doc_of(node, comments, lines)
    return docs


def _doc_of(node: ast.Assign, comments: dict[int, str], lines: list[str]) -> str:
    end = node.end_lineno or node.lineno
    if end in comments:
        return comments[end]
    above: list[str] = []
    line = node.lineno - 1
    while line in comments and lines[line - 1].lstrip().startswith("#"):
        above.insert(0, comments[line])
        line -= 1
    return " ".join(above)


def load_config(name_or_path: str) -> Any:
    """The ``ConfigDict`` of a bundled config name or config file (``get_config()``).

    Raises:
        FileNotFoundError, SyntaxError: No such config, or not Python.
        AttributeError: The file has no ``get_config()``.
        ValueError: ``get_config`` does not take the ``:arg`` given (or needs one), fails,
            or returns no ``ConfigDict``.
    """
    import ml_collections

    base, _, arg = resolve(name_or_path).partition(":")
    label = name_or_path.partition(":")[0]  # as given: a bundled name, not its file
    spec = importlib.util.spec_from_file_location(f"_probcast_config_{Path(base).stem}", base)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"config {label!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (SyntaxError, OSError):
        raise
    except Exception as err:  # the config file's own code
        raise ValueError(f"config {label!r} fails to load: {type(err).__name__}: {err}") from err
    get = getattr(module, "get_config", None)
    if not callable(get):
        raise AttributeError(f"config {label!r} has no get_config() function")
    args = [arg] if arg else []
    try:
        inspect.signature(get).bind(*args)
    except TypeError:
        wrong = f"takes no argument (given :{arg})" if arg else f"needs one ({label}:ARG)"
        raise ValueError(f"config {label!r}: get_config() {wrong}") from None
    try:
        config = get(*args)
    except Exception as err:  # the config file's own code
        why = f"{type(err).__name__}: {err}"
        raise ValueError(f"config {label!r}: get_config() failed: {why}") from err
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(
            f"config {label!r}: get_config() returned type {type(config).__name__}; "
            "expected an ml_collections.ConfigDict"
        )
    return config


def _flat(config: Any) -> dict[str, Any]:
    """``{"section.field": value}`` of a ``ConfigDict`` (as logged to the tracker)."""
    return flatten(config.to_dict())


def fields_text(name: str = "default") -> str:
    """The table of config fields: name, value in config ``name`` and meaning."""
    flat = _flat(load_config(name))
    docs = field_docs()
    values = {k: flat[k] for k in [*docs, *sorted(flat)] if k in flat}  # file order first
    width = max(len(k) for k in values) + 2
    shown = {k: repr(v) if isinstance(v, str) else str(v) for k, v in values.items()}
    vwidth = min(max(len(v) for v in shown.values()), 12) + 2
    lines = [f"config fields (values of {name!r}; override with --config.SECTION.FIELD=VALUE):"]
    section = ""
    for key, value in shown.items():
        if key.split(".")[0] != section:
            section = key.split(".")[0]
            lines.append(f"  [{section}]")
        doc = docs.get(key) or "(see docs/model.md)"
        pad = f"{value:<{vwidth}}" if len(value) < vwidth else value + "  "
        head = f"  {key:<{width}}{pad}"
        indent = " " * (2 + width + vwidth)
        lines += textwrap.wrap(doc, HELP_WIDTH, initial_indent=head, subsequent_indent=indent) or [
            head.rstrip()
        ]
    return "\n".join(lines)


def help_text(argv: list[str]) -> str:
    """``probcast train --help`` (the fields of ``--config=NAME`` when given)."""
    name = _config_name(joined(argv)) or "default"
    body = DESCRIPTION.format(names=", ".join(available()))
    return f"{USAGE}\n\n{body}\n{distributed.HELP}\n{fields_text(name)}"


def check_overrides(argv: list[str], config: Any) -> None:
    """Raise ``KeyError`` with a suggestion for an override naming no config field."""
    known = _flat(config)
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        key = arg[len("--config.") :].split("=", 1)[0]  # --config.K=V or --config.K V
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise KeyError(
                f"unknown config field {key!r} in {arg}{hint} (see probcast train --help)"
            )


def joined(argv: list[str]) -> list[str]:
    """``--config NAME`` and ``--workdir DIR`` (space forms, as absl takes them) as ``--x=...``."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in ("--config", "--workdir"):
            value = next(args, None)
            arg = arg if value is None else f"{arg}={value}"
        out.append(arg)
    return out


def _config_name(argv: list[str]) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)


def _resolve_config_arg(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("--config="):
            arg = "--config=" + resolve(arg[len("--config=") :])
        out.append(arg)
    return out


def _parse(argv: list[str]) -> tuple[Any, str]:
    from absl import flags
    from ml_collections import config_flags

    argv = joined(argv)
    fv = flags.FlagValues()
    args = ["probcast train", *_resolve_config_arg(argv)]
    # sys_argv: config_flags finds the --config.x.y overrides there (default: sys.argv).
    config_flags.DEFINE_config_file(
        "config", None, "Training config.", flag_values=fv, lock_config=True, sys_argv=args
    )
    flags.DEFINE_string("workdir", None, "Directory of checkpoints and artefact.", flag_values=fv)
    flags.mark_flags_as_required(["config", "workdir"], flag_values=fv)
    name = _config_name(argv)
    if name is not None:
        check_overrides(argv, load_config(name))
    try:
        rest = fv(args)[1:]
    except flags.Error as err:
        raise ValueError(" ".join(str(err).split())) from None
    if rest:  # absl leaves what is no flag: a typo or a value after a boolean field
        raise ValueError(f"unexpected argument {rest[0]!r}; options are --NAME=VALUE")
    return fv["config"].value, str(fv.workdir)


def _results_text(results: list[Any]) -> list[str]:
    lines = []
    for r in results:
        crps = " ".join(f"{k}={v:.4g}" for k, v in r.val_crps.items())
        how = (
            f"best epoch {r.best_epoch}, val crps {crps}"
            if crps
            else f"{r.epochs_run} epochs, no validation rows (data.val_fraction=0)"
        )
        lines.append(f"seed {r.seed}: {how}, {r.wall_s:.1f} s")
    return lines


def _streams(config: Any) -> bool:
    """Whether the training streams its table (then a folder of partitions is read)."""
    from probcast.train import stream

    try:
        return stream.wanted(config)
    except (OSError, ValueError):
        return False  # data_problem names what is wrong with the path


def _expected(err: BaseException) -> bool:
    """Whether ``err`` is a failure to report in one line (else: a bug, with a traceback)."""
    known = (ValueError, KeyError, OSError, FloatingPointError)
    return isinstance(err, known) or type(err).__module__.startswith("probcast")


def main(argv: list[str]) -> int:
    """Run ``probcast train`` with ``argv`` (without the program name).

    Exit status 2 for a bad argument or config field (checked before anything is read or
    written: :func:`probcast.train.check.check_config`), 1 for a failure of the training
    (unreadable data, a diverging loss, ...).
    """
    argv = joined(argv)
    try:
        if any(a in ("-h", "--help", "--helpfull") for a in argv):
            print(help_text(argv))
            return 0
        cluster, argv = distributed.split_args(argv)
        config, workdir = _parse(argv)
        check_config(config)
    except (KeyError, ConfigError) as err:
        print(f"probcast train: error: {err.args[0]}", file=sys.stderr)
        return 2
    except (FileNotFoundError, AttributeError, ValueError, SyntaxError) as err:
        print(f"probcast train: error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    problem = data_problem(str(config.data.path), stream=_streams(config))
    if problem:
        print(f"probcast train: error: {problem}", file=sys.stderr)
        return 1
    from probcast.logs import configure_logging

    configure_logging()
    if cluster is not None:
        try:
            distributed.initialize(cluster)  # before any JAX computation
        except distributed.DistributedError as err:
            print(f"probcast train: error: {err}", file=sys.stderr)
            return 1
    from probcast.train.loop import train

    try:
        name = Path((_config_name(argv) or "").partition(":")[0]).stem
        if cluster is None:
            results = train(config, workdir, config_name=name)
        else:
            results = distributed.train(config, workdir, cluster, config_name=name)
            distributed.shutdown()
            if not cluster.primary:
                return 0
    except Exception as err:  # the workdir is removed if nothing was trained (loop.train)
        if not _expected(err):
            raise
        msg = str(err.args[0] if isinstance(err, KeyError) and err.args else describe(err))
        print(f"probcast train: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    print("\n".join(_results_text(results)))
    print(f"model written to {workdir}")
    return 0
