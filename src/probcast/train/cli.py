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
import io
import os
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any

from probcast.configs import CONFIG_DIR, available, resolve
from probcast.io import describe
from probcast.train import distributed
from probcast.train.tracking import flatten
from probcast.train.workdir import LOCK

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
    """The ``ConfigDict`` of a bundled config name or config file (``get_config()``)."""
    base, _, arg = resolve(name_or_path).partition(":")
    spec = importlib.util.spec_from_file_location(f"_probcast_config_{Path(base).stem}", base)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"config {base!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config {base!r} has no get_config() function")
    return module.get_config(arg) if arg else module.get_config()


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
    name = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "default")
    body = DESCRIPTION.format(names=", ".join(available()))
    return f"{USAGE}\n\n{body}\n{distributed.HELP}\n{fields_text(name)}"


def check_overrides(argv: list[str], config: Any) -> None:
    """Raise ``KeyError`` with a suggestion for an override naming no config field."""
    known = _flat(config)
    for arg in argv:
        if not arg.startswith("--config.") or "=" not in arg:
            continue
        key = arg[len("--config.") :].split("=", 1)[0]
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise KeyError(f"unknown config field {key!r} in {arg}{hint} (see --help)")


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

    fv = flags.FlagValues()
    args = ["probcast train", *_resolve_config_arg(argv)]
    # sys_argv: config_flags finds the --config.x.y overrides there (default: sys.argv).
    config_flags.DEFINE_config_file(
        "config", None, "Training config.", flag_values=fv, lock_config=True, sys_argv=args
    )
    flags.DEFINE_string("workdir", None, "Directory of checkpoints and artefact.", flag_values=fv)
    flags.mark_flags_as_required(["config", "workdir"], flag_values=fv)
    name = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if name is not None:
        check_overrides(argv, load_config(name))
    try:
        fv(args)
    except flags.Error as err:
        raise ValueError(str(err)) from None
    return fv["config"].value, str(fv.workdir)


def _remove_if_empty(workdir: Path) -> None:
    """Remove a work directory this failed run created and left with nothing but its lock."""
    if not workdir.is_dir() or any(p.name != LOCK for p in workdir.iterdir()):
        return
    lock = workdir / LOCK
    if lock.exists() and lock.read_text().strip() not in ("", str(os.getpid())):
        return  # another process's lock: not ours to remove
    lock.unlink(missing_ok=True)
    workdir.rmdir()


def main(argv: list[str]) -> int:
    """Run ``probcast train`` with ``argv`` (without the program name)."""
    try:
        if any(a in ("-h", "--help", "--helpfull") for a in argv):
            print(help_text(argv))
            return 0
        cluster, argv = distributed.split_args(argv)
        config, workdir = _parse(argv)
    except KeyError as err:
        print(f"probcast train: error: {err.args[0]}", file=sys.stderr)
        return 2
    except (FileNotFoundError, AttributeError, ValueError, SyntaxError) as err:
        print(f"probcast train: error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    data_path = Path(str(config.data.path))
    zarr_store = (data_path / "zarr.json").exists() or (data_path / ".zgroup").exists()
    if str(config.data.path) and data_path.is_dir() and not zarr_store:
        print(
            f"probcast train: error: {data_path}: is a directory; --config.data.path "
            "needs a station table (CSV/Parquet) or a registry dataset id",
            file=sys.stderr,
        )
        return 1  # fmt: skip
    from probcast.logs import configure_logging

    configure_logging()
    if cluster is not None:
        try:
            distributed.initialize(cluster)  # before any JAX computation
        except distributed.DistributedError as err:
            print(f"probcast train: error: {err}", file=sys.stderr)
            return 1
    from probcast.train.loop import train

    existed = Path(workdir).exists()
    try:
        label = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
        name = Path(label.partition(":")[0]).stem
        if cluster is None:
            results = train(config, workdir, config_name=name)
        else:
            results = distributed.train(config, workdir, cluster, config_name=name)
            distributed.shutdown()
            if not cluster.primary:
                return 0
    except (ValueError, KeyError, OSError) as err:
        msg = str(err.args[0] if isinstance(err, KeyError) and err.args else describe(err))
        named = isinstance(err, OSError) and err.filename  # e.g. the workdir: not the data
        if (
            not named
            and data_path.is_file()
            and str(data_path) not in msg
            and str(data_path.name) not in msg
        ):
            msg = f"{data_path}: {msg}"  # e.g. a reader's error that names no file
        print(f"probcast train: error: {msg}", file=sys.stderr)
        if not existed and (cluster is None or cluster.primary):
            _remove_if_empty(Path(workdir))
        return 1
    for r in results:
        crps = " ".join(f"{k}={v:.4g}" for k, v in r.val_crps.items())
        print(f"seed {r.seed}: best epoch {r.best_epoch}, val crps {crps}, {r.wall_s:.1f} s")
    print(f"model written to {workdir}")
    return 0
