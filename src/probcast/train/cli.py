"""``probcast train --config=NAME_OR_PATH --workdir=DIR [--config.section.field=value ...]``.

``--config`` is a bundled config name (``default``, ``tiny``, ``gpu_bf16``,
``norway_precip``) or a path to a Python file with ``get_config()``; any field can be
overridden on the command line (ml_collections ``config_flags``). Rerunning the same command
resumes an interrupted run.
"""

from __future__ import annotations

import sys

from absl import flags
from ml_collections import config_flags

from probcast.configs import resolve
from probcast.logs import configure_logging


def _flags(argv: list[str]) -> flags.FlagValues:
    fv = flags.FlagValues()
    # sys_argv: config_flags finds the --config.x.y overrides there (default: sys.argv).
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Training config: bundled name or file.",
        flag_values=fv,
        lock_config=True,
        sys_argv=argv,
    )
    flags.DEFINE_string("workdir", None, "Directory of checkpoints and artefact.", flag_values=fv)
    flags.mark_flags_as_required(["config", "workdir"], flag_values=fv)
    return fv


def _resolve_config_arg(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("--config="):
            arg = "--config=" + resolve(arg[len("--config=") :])
        out.append(arg)
    return out


def main(argv: list[str]) -> int:
    """Run ``probcast train`` with ``argv`` (without the program name)."""
    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(__doc__)
        return 0
    try:
        args = ["probcast train", *_resolve_config_arg(argv)]
        fv = _flags(args)
        fv(args)
    except (flags.Error, FileNotFoundError, AttributeError, KeyError, ValueError) as err:
        print(f"probcast train: {err}", file=sys.stderr)
        return 2
    configure_logging()
    from probcast.train.loop import train

    try:
        results = train(fv["config"].value, fv.workdir)
    except (ValueError, FileNotFoundError) as err:
        print(f"probcast train: {err}", file=sys.stderr)
        return 1
    for r in results:
        crps = " ".join(f"{k}={v:.4g}" for k, v in r.val_crps.items())
        print(f"seed {r.seed}: best epoch {r.best_epoch}, val crps {crps}, {r.wall_s:.1f} s")
    print(f"model written to {fv.workdir}")
    return 0
