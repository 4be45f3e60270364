"""``probcast model``: the versions of a registered model, promotion and rollback.

::

    probcast model list --pipeline ops.yaml                 # versions, aliases, gate scores
    probcast model register runs/mine --pipeline ops.yaml --promote   # the first champion
    probcast model promote 3 --pipeline ops.yaml --reason "checked by hand"
    probcast model rollback --pipeline ops.yaml --reason "bad tp since 2026-11-29"
    probcast model upgrades --pipeline ops.yaml             # NWP input upgrades seen by cycles

The registered model is the pipeline file's ``model: {registry: NAME, ...}``, or
``--name NAME --uri URI [--store DIR]`` without a pipeline. A promotion or rollback takes
effect at the next cycle (each cycle resolves the alias when it starts). ``list``,
``promote`` and ``rollback`` refuse a SQLite registry file that does not exist (instead of
creating an empty one); a database registry is tried once, quickly, before MLflow connects
(an unreachable one is an error naming the registry's URI and where it was set), and an
MLflow server gets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT=30``
unless set. Exit status: 0 done, 1 the registry refused or cannot be reached (no such version,
nothing to roll back to, no registry there), 2 bad arguments (``register`` of a folder that
does not exist or is not a model's work directory included).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from probcast.logs import configure_logging
from probcast.model.integrity import redact
from probcast.ops.helptext import command_parser
from probcast.ops.pipeline import PipelineError, load
from probcast.ops.pipeline_check import workdir_problem
from probcast.ops.registry import Registry, RegistryError, RegistrySpec, parse_model_block
from probcast.ops.registry_check import check_reachable, mlflow_bounds

PROG = "probcast model"


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, __doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--pipeline", help="pipeline file with model: {registry: NAME}")
    common.add_argument("--name", help="registered model name (without --pipeline)")
    common.add_argument("--uri", help="registry URI (default: sqlite:///mlruns.db here)")
    common.add_argument("--store", help="folder of the version copies (default: models)")
    listing = sub.add_parser("list", parents=[common], help="versions, aliases, gate scores")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    reg = sub.add_parser("register", parents=[common], help="register a trained model workdir")
    reg.add_argument("workdir", help="a complete model work directory")
    reg.add_argument("--promote", action="store_true", help="make it the champion")
    promote = sub.add_parser("promote", parents=[common], help="make VERSION the champion")
    promote.add_argument("version")
    promote.add_argument("--reason", default="", help="recorded with the promotion")
    back = sub.add_parser("rollback", parents=[common], help="champion back to the previous one")
    back.add_argument("--reason", default="", help="recorded with the rollback")
    sub.add_parser("upgrades", parents=[common], help="NWP input upgrades seen by the cycles")
    return parser


def _spec(args: argparse.Namespace) -> tuple[RegistrySpec, str]:
    """The registry, and where its URI was set (for messages)."""
    if args.pipeline:
        pipe = load(args.pipeline)
        if pipe.registry is None:
            raise PipelineError(f"{args.pipeline}: model is a workdir, not {{registry: NAME}}")
        return pipe.registry, f"{args.pipeline}: model.uri"
    if not args.name:
        raise PipelineError("give --pipeline FILE or --name NAME (and --uri, --store)")
    block = {"registry": args.name, "uri": args.uri, "store": args.store}
    spec = parse_model_block({k: v for k, v in block.items() if v}, Path.cwd(), "arguments")
    return spec, "--uri" if args.uri else "--uri (default: mlruns.db in the current folder)"


def _row(version: dict[str, Any]) -> str:
    tags = version["tags"]
    scores = " ".join(
        f"{k.removeprefix('gate.crps.')}={v}"
        for k, v in sorted(tags.items())
        if k.startswith("gate.crps.")
    )
    gate = tags.get("gate.decision", "-")
    when = version["created"].strftime("%Y-%m-%dT%H:%MZ")
    aliases = ",".join(version["aliases"]) or "-"
    digest = tags.get("probcast.digest", "")[:12]
    return f"{version['version']:>4}  {aliases:<20} {when}  {gate:<16} {digest}  {scores}".rstrip()


def _list(registry: Registry, as_json: bool) -> int:
    versions = registry.versions()
    if as_json:
        doc = {
            "name": registry.name,
            "aliases": registry.aliases(),
            "champion_history": registry.history(),
            "versions": [{**v, "created": v["created"].isoformat()} for v in versions],
        }
        print(json.dumps(doc, indent=2))
        return 0
    if not versions:
        print(f"{registry.name}: no version registered")
        return 0
    print(f"{'ver':>4}  {'aliases':<20} {'registered':<17}  {'gate':<16} {'digest':<12}  scores")
    for version in versions:
        print(_row(version))
    return 0


def _upgrades(args: argparse.Namespace) -> int:
    from probcast.ops import lineage
    from probcast.ops.cycle import open_store

    if not args.pipeline:
        raise PipelineError("upgrades needs --pipeline (the cycles' state store)")
    store = open_store(load(args.pipeline))
    try:
        rows = lineage.upgrades(store)
    finally:
        store.close()
    for row in rows:
        changes = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in row["changes"].items())
        print(f"{row['cycle']}  {changes}")
    if not rows:
        print("no NWP input upgrade recorded")
    return 0


def main(argv: list[str]) -> int:
    """Run ``probcast model`` (see the module docstring)."""
    args = _parser().parse_args(argv)
    configure_logging()
    mlflow_bounds()
    where, uri = "the registry", ""
    try:
        if args.action == "upgrades":
            return _upgrades(args)
        if args.action == "register":
            why = workdir_problem(Path(args.workdir))
            if why:
                raise PipelineError(f"cannot register: {why}")
        spec, where = _spec(args)
        uri = redact(spec.uri)
        check_reachable(spec, where, must_exist=args.action != "register")
        return _act(Registry(spec), args)
    except PipelineError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except RegistryError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if not uri or not _registry_failure(err):  # not the registry's: the dispatcher's
            raise
        cause = redact(" ".join(str(err).split()))
        print(f"{PROG}: error: {where}: the registry {uri} failed: {cause}", file=sys.stderr)
        return 1


def _act(registry: Registry, args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(registry, args.json)
    if args.action == "register":
        version = registry.register(args.workdir)  # (main checked the folder is a model's)
        print(f"{registry.name} version {version} registered (alias challenger)")
        if args.promote:
            registry.promote(version, by="manual", reason="registered with --promote")
            print(f"{registry.name} version {version} is the champion")
    elif args.action == "promote":
        version = registry.promote(args.version, by="manual", reason=args.reason)
        print(f"{registry.name} version {version} is the champion")
    else:
        old, new = registry.rollback(args.reason)
        print(f"{registry.name}: champion rolled back from version {old} to {new}")
    return 0


def _registry_failure(err: Exception) -> bool:
    """Whether ``err`` is the registry's database or server failing.

    An SQLAlchemy or MLflow error, told by module (not importing mlflow here: telemetry is
    switched off before mlflow is first imported).
    """
    return any(c.__module__.split(".")[0] in ("sqlalchemy", "mlflow") for c in type(err).__mro__)
