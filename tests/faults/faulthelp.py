"""The OS-fault matrix of the commands: inputs, cases, an in-process runner, the verdicts.

Shared by ``tests/faults/test_faults_os.py`` (one test per case) and
``benchmarks/fault_matrix.py`` (the counts table of docs/faults.md). Every case runs a real
``probcast`` command through :func:`probcast.cli.main` (the console script's entry point)
and is judged on what a user would see and what is left on disk:

- ``clear``: exit status non-zero, one paragraph naming the path, nothing left behind;
- ``traceback``: an exception escaped, or the message is an "unexpected error";
- ``silent wrong``: exit status 0;
- ``left files``: temporaries (``.*.tmp-*``) or a new file at the intended output;
- ``data loss``: what was at the output before (a file, a folder's file) is gone or changed;
- ``unclear``: a one-line error that does not name the path.

Paths in ``argv`` use placeholders: ``{in}`` (inputs), ``{out}`` (a fresh folder per case),
``{model}`` (a complete model artefact), ``{ro}`` (a read-only folder), ``{full}`` (a
folder on a full file system).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

SIZE_LIMIT = 3000
"""RLIMIT_FSIZE (bytes) of the file-size-limit cases: model JSON files fit, tables do not."""
OLD = "previous content\n"


@dataclass(frozen=True)
class Case:
    """One command run against one fault.

    Attributes:
        id: ``<command>-<fault>``.
        fault: ``read-only``, ``parent-is-file``, ``target-is-folder``, ``size-limit``,
            ``full-disk``, ``input-is-folder``, ``truncated``, ``missing``.
        argv: The command line (placeholders, see the module docstring).
        target: The intended output (placeholders), ``""`` for input faults.
        word: What the message must name (placeholders).
        before: ``old`` (the target holds an earlier file), ``folder`` (the target is a
            folder with a file) or ``""``.
    """

    id: str
    fault: str
    argv: tuple[str, ...]
    target: str = ""
    word: str = ""
    before: str = ""

    @property
    def group(self) -> str:
        """Cases that need a process of their own (a file-size limit) or a mount."""
        return {"size-limit": "limit", "full-disk": "full"}.get(self.fault, "plain")


def _c(id_: str, fault: str, argv: str, target: str = "", word: str = "", before: str = ""):
    return Case(id_, fault, tuple(argv.split()), target, word or target, before)


SPLIT = "data split {in}/good.csv --test-from 2021-01-10 --out"
TRAIN = "train --config=tiny --config.train.epochs=1 --config.train.n_seeds=1"
PRED = "predict --model={model} --input={in}/good.parquet --output="
VERIFY = "verify --truth={in}/good.csv --forecast=a={in}/good.csv --out="
DRIFT = "monitor drift --model={model} --input"
RUN = "run --cycle 2021-01-14T00Z --pipeline {in}/pipe.yaml --state sqlite:///"

CASES: list[Case] = [
    # data check: inputs
    _c("check-input-folder", "input-is-folder", "data check {in}/folder", word="{in}/folder"),
    _c("check-missing", "missing", "data check {in}/missing.csv", word="{in}/missing.csv"),
    _c("check-trunc-csv", "truncated", "data check {in}/trunc.csv", word="{in}/trunc.csv"),
    _c("check-trunc-parquet", "truncated", "data check {in}/trunc.parquet", word="trunc.parquet"),
    _c("check-trunc-nc", "truncated", "data check {in}/trunc.nc", word="{in}/trunc.nc"),
    # data split: the output folder
    _c("split-read-only", "read-only", f"{SPLIT} {{ro}}/s", "{ro}/s/train.parquet", "{ro}/s"),
    _c("split-parent-file", "parent-is-file", f"{SPLIT} {{in}}/afile/s",
       "{in}/afile/s/train.parquet", "{in}/afile"),
    _c("split-size-limit", "size-limit", f"{SPLIT} {{out}}/s", "{out}/s/train.parquet",
       before="old"),
    _c("split-full-disk", "full-disk", f"{SPLIT} {{full}}/s", "{full}/s/train.parquet",
       before="old"),
    # train: the work directory and the data
    _c("train-read-only", "read-only", f"{TRAIN} --workdir={{ro}}/w --config.data.path="
       "{in}/good.csv", "{ro}/w/config.json", "{ro}/w"),
    _c("train-parent-file", "parent-is-file", f"{TRAIN} --workdir={{in}}/afile/w "
       "--config.data.path={in}/good.csv", "{in}/afile/w/config.json", "{in}/afile"),
    _c("train-trunc-nc", "truncated", f"{TRAIN} --workdir={{out}}/w "
       "--config.data.path={in}/trunc.nc", word="{in}/trunc.nc"),
    _c("train-size-limit", "size-limit", f"{TRAIN} --workdir={{out}}/w "
       "--config.data.path={in}/good.csv", "{out}/w/COMPLETE.json", "{out}/w"),
    # predict (stations): the output file and the input
    _c("predict-read-only", "read-only", PRED + "{ro}/p.csv", "{ro}/p.csv"),
    _c("predict-parent-file", "parent-is-file", PRED + "{in}/afile/p.parquet",
       "{in}/afile/p.parquet"),
    _c("predict-target-folder", "target-is-folder", PRED + "{out}/p.csv", "{out}/p.csv",
       before="folder"),
    _c("predict-size-limit-csv", "size-limit", PRED + "{out}/p.csv", "{out}/p.csv",
       before="old"),
    _c("predict-size-limit-parquet", "size-limit", PRED + "{out}/p.parquet", "{out}/p.parquet",
       before="old"),
    _c("predict-size-limit-nc", "size-limit", PRED + "{out}/p.nc", "{out}/p.nc", before="old"),
    _c("predict-full-disk-nc", "full-disk", PRED + "{full}/p.nc", "{full}/p.nc", before="old"),
    _c("predict-full-disk-parquet", "full-disk", PRED + "{full}/p.parquet", "{full}/p.parquet"),
    _c("predict-input-folder", "input-is-folder",
       "predict --model={model} --input={in}/folder --output={out}/p.csv", word="{in}/folder"),
    _c("predict-missing", "missing",
       "predict --model={model} --input={in}/missing.csv --output={out}/p.csv",
       word="{in}/missing.csv"),
    _c("predict-trunc-csv", "truncated",
       "predict --model={model} --input={in}/trunc.csv --output={out}/p.csv",
       word="{in}/trunc.csv"),
    # predict (grids): the input is read before the model is asked for its grid features
    _c("predict-trunc-nc", "truncated",
       "predict --model={model} --input={in}/trunc.nc --output={out}/p.nc",
       word="{in}/trunc.nc"),
    _c("predict-trunc-grib", "truncated",
       "predict --model={model} --input={in}/trunc.grib --output={out}/p.nc",
       word="{in}/trunc.grib"),
    # verify: the output folder and the inputs
    _c("verify-read-only", "read-only", VERIFY + "{ro}/v", "{ro}/v/scores.csv", "{ro}/v"),
    _c("verify-parent-file", "parent-is-file", VERIFY + "{in}/afile/v", "{in}/afile/v",
       "{in}/afile"),
    _c("verify-size-limit", "size-limit", VERIFY + "{out}/v", "{out}/v/scores.csv",
       before="old"),
    _c("verify-full-disk", "full-disk", VERIFY + "{full}/v", "{full}/v/scores.csv"),
    _c("verify-input-folder", "input-is-folder",
       "verify --truth={in}/folder --forecast=a={in}/good.csv --out={out}/v", word="{in}/folder"),
    _c("verify-trunc-nc", "truncated",
       "verify --truth={in}/good.csv --forecast=a={in}/trunc.nc --out={out}/v",
       word="{in}/trunc.nc"),
    # demo: its output folder (checked before the dataset is prepared)
    _c("demo-read-only", "read-only", "demo --dataset pnw-t2m --out {ro}/d", "{ro}/d", "{ro}/d"),
    _c("demo-parent-file", "parent-is-file", "demo --dataset pnw-t2m --out {in}/afile/d",
       "{in}/afile/d", "{in}/afile"),
    # run: the state database, the published copies, the pipeline file
    _c("run-state-read-only", "read-only", RUN + "{ro}/s.db", "{ro}/s.db"),
    _c("run-state-parent-file", "parent-is-file", RUN + "{in}/afile/s.db", "{in}/afile/s.db"),
    _c("run-publish-read-only", "read-only",
       "run --cycle 2021-01-14T00Z --pipeline {in}/pipe_ro.yaml --state sqlite:///{out}/s.db",
       "{ro}/pub/2021011400/pred_2021011400.parquet", "{ro}/pub"),
    _c("run-pipeline-folder", "input-is-folder",
       "run --cycle 2021-01-14T00Z --pipeline {in}/folder", word="{in}/folder"),
    _c("run-pipeline-missing", "missing",
       "run --cycle 2021-01-14T00Z --pipeline {in}/missing.yaml", word="{in}/missing.yaml"),
    # monitor drift: the reports and the input
    _c("drift-read-only", "read-only", f"{DRIFT} {{in}}/good.parquet --json {{ro}}/d.json",
       "{ro}/d.json"),
    _c("drift-parent-file", "parent-is-file",
       f"{DRIFT} {{in}}/good.parquet --json {{in}}/afile/d.json", "{in}/afile/d.json"),
    _c("drift-size-limit", "size-limit",
       f"{DRIFT} {{in}}/good.parquet --markdown {{out}}/d.md --json {{out}}/d.json",
       "{out}/d.json", before="old"),
    _c("drift-input-folder", "input-is-folder", f"{DRIFT} {{in}}/folder", word="{in}/folder"),
    _c("drift-trunc-parquet", "truncated", f"{DRIFT} {{in}}/trunc.parquet",
       word="{in}/trunc.parquet"),
    _c("drift-missing", "missing", f"{DRIFT} {{in}}/missing.parquet",
       word="{in}/missing.parquet"),
]  # fmt: skip


@dataclass
class Result:
    """What one case did, and its verdict."""

    id: str
    rc: int
    message: str
    verdict: str
    why: str = ""


# -- inputs ------------------------------------------------------------------------------


def write_model(workdir: Path, table: pd.DataFrame) -> Path:
    """A complete model artefact (untrained network: seconds, not a training run)."""
    from flax import nnx

    from probcast.model import integrity
    from probcast.model.artefact import seed_dir, write_run_files
    from probcast.model.checkpoint import SeedCheckpoints
    from probcast.model.domain import save_domain
    from probcast.testing.models import untrained_model

    heads = {"t2m": "normal", "tp": "censored_logistic"}
    model = untrained_model(table, heads)
    workdir.mkdir(parents=True, exist_ok=True)
    write_run_files(workdir, model.config, model.spec, heads, fingerprint="x", source="synthetic")
    ckpt = SeedCheckpoints(seed_dir(workdir, 0))
    ckpt.save_best(0, nnx.state(model.networks[0], nnx.Param), {"epoch": 0})
    ckpt.close()
    assert model.domain is not None
    save_domain(workdir, model.domain)
    integrity.write_marker(workdir)
    return workdir


def write_inputs(root: Path, ro: Path) -> dict[str, Path]:
    """Inputs (good and damaged tables, grids, GRIB), a model and pipeline files."""
    import yaml

    from probcast.ingest.gridded import write_dataset
    from probcast.testing.archives import write_cycle
    from probcast.testing.grids import forecast_grid
    from probcast.testing.stations import station_table

    d = root / "in"
    (d / "folder").mkdir(parents=True)
    (d / "afile").write_text("a file, not a folder\n")
    table = station_table(n_stations=3, n_inits=14)
    table.to_csv(d / "good.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    table.to_parquet(d / "good.parquet")
    write_dataset(forecast_grid((6, 8), 3), d / "grid.nc")
    write_cycle(d / "c.grib", pd.Timestamp("2021-01-01"), [0, 6, 12])
    for name in ("good.csv", "good.parquet", "grid.nc", "c.grib"):
        data = (d / name).read_bytes()
        (d / ("trunc" + Path(name).suffix)).write_bytes(data[: len(data) // 2])
    model = write_model(root / "model", table)
    cycles = d / "cycles"
    cycles.mkdir()
    last = table[table.init_time == table.init_time.max()]
    last.drop(columns=["obs_t2m", "obs_tp"]).to_parquet(cycles / "2021011400.parquet")
    for name, dest in (("pipe", root / "published"), ("pipe_ro", ro / "pub")):
        pipe = {
            "model": str(model),
            "input": str(cycles) + "/{cycle:%Y%m%d%H}.parquet",
            "complete": {"rule": "stable", "settle_seconds": 0},
            "products": {"output": "pred_{cycle:%Y%m%d%H}.parquet", "members": 4},
            "destinations": [str(dest)],
        }
        (d / f"{name}.yaml").write_text(yaml.safe_dump(pipe))
    return {"in": d, "model": model}


# -- read-only and full file systems -------------------------------------------------------


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    cmd = ["mount", "-t", "tmpfs", "-o", options, "probcast-faults", str(path)]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def unmount(path: Path) -> None:
    """Unmount a folder mounted by :func:`read_only_folder` or :func:`full_folder`."""
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _writable(path: Path) -> bool:
    try:
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("x")
        probe.unlink()
        return True
    except OSError:
        return False


def read_only_folder(root: Path) -> Path | None:
    """A folder nobody can write into, not even root; ``None`` if none can be made.

    A read-only tmpfs (root), else a folder of mode 0555 (not root), else ``/sys/kernel``
    (sysfs refuses new files to root too).
    """
    ro = root / "ro"
    if _mount(ro, "ro,size=64k"):
        return ro
    if os.geteuid() != 0:
        ro.chmod(0o555)
        return ro
    sysfs = Path("/sys/kernel")
    return sysfs if sysfs.is_dir() and not _writable(sysfs) else None


def full_folder(root: Path) -> Path | None:
    """A folder on a file system with a few KiB free (a small tmpfs); ``None`` if not root."""
    full = root / "full"
    if not _mount(full, "size=256k"):
        return None
    filler = full / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        f.write(b"\0" * (256 << 10))  # ENOSPC once full
        f.flush()
    with contextlib.suppress(OSError):
        os.truncate(filler, max(filler.stat().st_size - (8 << 10), 0))  # 8 KiB left
    return full


# -- running and judging -----------------------------------------------------------------


def _fill(text: str, paths: dict[str, Path]) -> str:
    for key, value in paths.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _prepare(case: Case, target: Path) -> None:
    if case.before == "old":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(OLD)
    elif case.before == "folder":
        target.mkdir(parents=True, exist_ok=True)
        (target / "keep.txt").write_text(OLD)


def _temporaries(folders: list[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir() and os.access(folder, os.W_OK):
            found += [p for p in folder.rglob(".*") if ".tmp-" in p.name]
    return found


def run_case(case: Case, paths: dict[str, Path]) -> Result:
    """Run ``case`` in this process (through ``probcast.cli.main``) and judge it."""
    from probcast.cli import main

    out = paths["work"] / case.id
    out.mkdir(parents=True, exist_ok=True)
    here = {**paths, "out": out}
    if "full" in paths:
        here["full"] = paths["full"] / case.id
    target = Path(_fill(case.target, here)) if case.target else None
    if target is not None and case.before:
        _prepare(case, target)
    existed = target is not None and target.exists()
    argv = [_fill(a, here) for a in case.argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            rc = main(argv)
        except BaseException:  # what the console script would print as a traceback
            rc, stderr = -1, io.StringIO(stderr.getvalue() + traceback.format_exc())
    err = stderr.getvalue()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln[:4].isdigit()]
    lines += [ln for ln in stdout.getvalue().splitlines() if " failed " in ln]  # run's cycles
    message = "\n".join(lines)
    word = _fill(case.word, here)
    folders = [out] + ([target.parent] if target is not None else [])
    if target is not None and case.before == "folder":
        folders.append(target)
    return Result(case.id, rc, message, *_verdict(case, rc, message, word, target, existed,
                                                  _temporaries(folders)))  # fmt: skip


def _unchanged(target: Path) -> bool:
    return target.is_file() and target.read_text(errors="replace") == OLD


def _verdict(
    case: Case,
    rc: int,
    message: str,
    word: str,
    target: Path | None,
    existed: bool,
    temporaries: list[Path],
) -> tuple[str, str]:
    if target is not None and case.before == "old" and not _unchanged(target):
        return "data loss", f"{target} was replaced or removed"
    if target is not None and case.before == "folder" and not (target / "keep.txt").is_file():
        return "data loss", f"{target}/keep.txt is gone"
    if rc == 0:
        return "silent wrong", "exit status 0"
    if rc < 0 or "Traceback" in message or "unexpected error" in message:
        return "traceback", message[-300:]
    if temporaries:
        return "left files", ", ".join(map(str, temporaries))
    if target is not None and not existed and target.exists():
        return "left files", f"{target} was written"
    if len(message.splitlines()) != 1 or word not in message:
        return "unclear", f"expected one line naming {word}"
    return "clear", ""


VERDICTS = ("clear", "traceback", "silent wrong", "left files", "data loss", "unclear")


def counts(results: list[Result]) -> dict[str, int]:
    """Cases tried and the count of each verdict."""
    out = {"cases tried": len(results)}
    out.update({v: sum(r.verdict == v for r in results) for v in VERDICTS})
    return out


# -- a group in a process of its own (a file-size limit) ---------------------------------

DRIVER = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import faulthelp
from pathlib import Path
paths = {k: Path(v) for k, v in json.loads(sys.argv[2]).items()}
ids = json.loads(sys.argv[3])
import probcast.cli, probcast.predict.cli, probcast.verify.cli, probcast.train.cli
import probcast.data.cli, probcast.monitor.cli, probcast.ops.cli_run  # before the limit
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
cases = [c for c in faulthelp.CASES if c.id in ids]
print(json.dumps([faulthelp.asdict(faulthelp.run_case(c, paths)) for c in cases]))
"""


def run_limited(cases: list[Case], paths: dict[str, Path]) -> tuple[list[Result], str]:
    """Run ``cases`` in one fresh interpreter under a file-size limit (``ulimit -f``).

    Returns:
        The results and the process's own stderr (C libraries print there directly).
    """
    import json
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PROBCAST_DEBUG"}
    args = [
        sys.executable, "-c", DRIVER, str(Path(__file__).parent),
        json.dumps({k: str(v) for k, v in paths.items()}), json.dumps([c.id for c in cases]),
        str(SIZE_LIMIT),
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode}): {proc.stderr[-3000:]}")
    rows = json.loads(proc.stdout.splitlines()[-1])
    return [Result(**row) for row in rows], proc.stderr


__all__ = ["CASES", "Case", "Result", "asdict", "counts"]
