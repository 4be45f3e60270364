"""The main job: ``probcast demo`` runs the whole chain on benchmark datasets.

fetch -> prepare (fixed split) -> train -> predict the test period (a
:class:`~probcast.predict.request.PredictRequest` through :func:`probcast.predict.runner.run`)
-> fit baselines on the same training split -> verify every method -> HTML report and a
printed table. With ``--all`` it runs every benchmark dataset and regenerates
``benchmarks/skill.md``. Any config field can be overridden as for ``probcast train``:
``probcast demo --config.train.epochs=5``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probcast import defaults, io

if TYPE_CHECKING:  # numpy and pandas load lazily: 'probcast demo --help' stays fast
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_DATASET = "verif-norway-precip"
DATASET_CONFIGS = {"verif-norway-precip": "norway_precip"}
"""Per-dataset config modules in ``probcast.configs`` whose name differs from the id."""


@dataclass
class DatasetRun:
    """What one dataset's run produced."""

    name: str
    scores: pd.DataFrame
    out_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    multivariate: pd.DataFrame | None = None
    train_days: float = float("nan")
    """First to last init date of the training split, in days."""
    diagnostics: dict[str, Any] = field(default_factory=dict)
    """The verification's histograms by method and variable (``Verification.diagnostics``)."""


def config_for(name: str, overrides: list[str] | None = None) -> Any:
    """Return the training config of dataset ``name`` (per-dataset file or the default).

    Args:
        name: Registry dataset id.
        overrides: ``--config.field=value`` arguments, parsed by ml_collections exactly as
            ``probcast train`` parses them.

    Raises:
        ValueError: An override names no field, has a value of the wrong type or one the
            training refuses (:func:`probcast.train.check.check_config`), with the message
            of ``probcast train``.
    """
    import importlib

    from absl import flags
    from ml_collections import config_flags

    from probcast.configs import available
    from probcast.train.check import check_config
    from probcast.train.cli import check_overrides, joined

    module = name.replace("-", "_")
    module = DATASET_CONFIGS.get(name, module if module in available() else "default")
    cfg = importlib.import_module(f"probcast.configs.{module}").get_config()
    cfg.data.path = name
    args = ["probcast demo", *joined(overrides or [])]
    fv = flags.FlagValues()
    try:
        check_overrides(args, cfg)  # the train command's "unknown field ...; did you mean"
        config_flags.DEFINE_config_dict("config", cfg, flag_values=fv, sys_argv=args)
        fv(args)
        config = fv["config"].value
        check_config(config)
        return config
    except KeyError as err:
        raise ValueError(f"config override: {err.args[0] if err.args else err}") from err
    except (flags.Error, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"config override: {' '.join(str(err).split())}") from err


def run_dataset(name: str, out: Path, *, overrides: list[str] | None = None) -> DatasetRun:
    """Run the whole chain on one registry dataset and write its report into ``out/name``."""
    import pandas as pd

    from probcast.bench.external import REFERENCES, brier_table, reference_thresholds
    from probcast.bench.goals import versus_best_classical
    from probcast.data.prepare import prepare
    from probcast.data.registry import fetch
    from probcast.model.artefact import OtherRunError, load
    from probcast.predict.request import PredictRequest
    from probcast.predict.runner import run
    from probcast.train.loop import train
    from probcast.verify import aggregate, report
    from probcast.verify.evaluate import verify

    out_dir = out / name
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    cfg = config_for(name, overrides)
    prepared = prepare(name)
    train_table, test_table = _as_tables(prepared, str(cfg.features.neighbourhood))
    seconds["prepare"] = time.perf_counter() - t0

    if cfg.tracking.backend == "mlflow" and not cfg.tracking.uri:
        cfg.tracking.uri = f"sqlite:///{(out / 'mlruns.db').resolve()}"
    t0 = time.perf_counter()
    try:
        train(cfg, out_dir / "model")
    except OtherRunError as err:  # an earlier version's defaults, other overrides
        log.warning(
            "%s was trained with other %s: training it again", err.workdir, ", ".join(err.changed)
        )
        shutil.rmtree(out_dir / "model")
        train(cfg, out_dir / "model")
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = load(out_dir / "model")
    targets = list(model.targets)
    thresholds = {v: list(t) for v in targets if (t := defaults.EVENT_THRESHOLDS.get(v, ()))}
    # prepare() already fetched and verified the files; only datasets with references of
    # their own need the paths again (fetch re-hashes every file, so skip it otherwise).
    files = fetch(name) if name in REFERENCES else {}
    ext = reference_thresholds(files, name)
    if ext:  # score every method at the thresholds of the dataset's own references too
        thresholds["tp"] = sorted(set(thresholds.get("tp", [])) | set(ext))
    request = PredictRequest(
        model=out_dir / "model",
        input=test_table,
        output=out_dir / "predictions.parquet",
        members=defaults.MEMBERS,
        quantiles=defaults.QUANTILES,
        thresholds=thresholds,
        template=train_table,  # coherent members: Schaake shuffle with training observations
    )
    pred = run(request, model)
    seconds["predict"] = time.perf_counter() - t0
    multi = coherence_scores(pred.table, targets)
    io.write_text(out_dir / "multivariate.csv", multi.to_csv(index=False))

    t0 = time.perf_counter()
    forecasts, families = run_baselines(train_table, test_table, targets)
    assert pred.table is not None
    forecasts["probcast"] = pred.table
    families["probcast"] = pred.families
    seconds["baselines"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ver = verify(
        test_table,
        forecasts,
        reference="raw",
        families=families,
        by=("lead_time", "station"),
        variables=targets,
        thresholds=thresholds,
    )
    scores = pd.concat([ver.scores, versus_best_classical(ver.cases, ver.scores)])
    scores = scores.reset_index(drop=True)
    meta = {**ver.meta, "dataset": name, "seconds": seconds}
    extra = {"diagnostics": ver.diagnostics, "stations": ver.stations.to_dict("records")}
    html = report.render(ver, title=f"probcast: {name}")  # scores and report: one set
    aggregate.write_scores(scores, out_dir, meta=meta, extra=extra, report=html)
    if ext:
        brier = brier_table(name, files, test_table, ver.scores)
        io.write_text(out_dir / "external_brier.csv", brier.to_csv(index=False))
        notes.append(external_summary(brier))
    seconds["verify"] = time.perf_counter() - t0
    inits = pd.to_datetime(train_table["init_time"], utc=True)
    days = (inits.max() - inits.min()) / pd.Timedelta(days=1)
    return DatasetRun(name, scores, out_dir, seconds, notes, multi, days, ver.diagnostics)


def coherence_scores(coherent: Any, targets: list[str], seed: int = 0) -> pd.DataFrame:
    """Energy/variogram scores (and CRPS of lead-time sums) of coherent vs independent members.

    The independent members are the coherent ones put in a random order per row (seeded), so
    the two have the very same marginals and differ only in their dependence structure.
    """
    import numpy as np
    import pandas as pd

    from probcast.verify.multivariate import member_matrix, multivariate_scores

    rng = np.random.default_rng(seed)
    coh = {v: m for v in targets if (m := member_matrix(coherent, v)) is not None}
    ind = {
        v: np.take_along_axis(m, np.argsort(rng.random(m.shape), axis=1), 1) for v, m in coh.items()
    }
    return pd.concat(
        [
            multivariate_scores(coherent, ind).assign(members="independent"),
            multivariate_scores(coherent, coh).assign(members="coherent"),
        ],
        ignore_index=True,
    )


def external_summary(brier: pd.DataFrame) -> str:
    """Brier scores (method x threshold) as a markdown table, best per threshold in bold."""
    import numpy as np

    wide = brier.pivot_table(index="method", columns="threshold", values="brier", sort=False)
    values = wide.to_numpy()
    best = np.nanargmin(values, axis=0)
    lines = ["| method | " + " | ".join(f"P(tp > {t:g})" for t in wide.columns) + " |"]
    lines.append("|" + "---|" * (len(wide.columns) + 1))
    for i, method in enumerate(wide.index):
        cells = [f"**{v:.4f}**" if best[j] == i else f"{v:.4f}" for j, v in enumerate(values[i])]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_baselines(
    train: pd.DataFrame, test: pd.DataFrame, targets: list[str], *, members: int = defaults.MEMBERS
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, str]]]:
    """Fit every classical baseline on ``train`` and predict ``test``.

    Returns:
        ``({method: prediction table}, {method: {variable: family}})`` in the column
        contract of :mod:`probcast.products.table` (the raw forecast as ``fc_<var>``).
    """
    from probcast.baselines import BASELINES, make
    from probcast.dists import Predictive
    from probcast.products.table import predictive_table
    from probcast.schema import KEY_COLUMNS

    keys = test[list(KEY_COLUMNS)].reset_index(drop=True)
    tables: dict[str, pd.DataFrame] = {}
    families: dict[str, dict[str, str]] = {}
    for method in BASELINES:
        fcs = []
        for var in targets:
            if method == "raw":
                fcs.append(Predictive.from_point(var, test[f"fc_{var}"].to_numpy()))
                continue
            kwargs = {"n_members": members} if method == "dressing" else {}
            fcs.append(make(method, var, **kwargs).fit(train).predict(test))
        tables[method], fams = predictive_table(keys, fcs)
        if fams:
            families[method] = fams
    return tables, families


def _as_tables(prepared: Any, neighbourhood: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if prepared.kind == "grid":
        from probcast.align.points import grid_to_table

        return (
            grid_to_table(prepared.train, neighbourhood=neighbourhood),
            grid_to_table(prepared.test, neighbourhood=neighbourhood),
        )
    return prepared.train, prepared.test


def overall_table(scores: pd.DataFrame) -> pd.DataFrame:
    """CRPS and CRPSS (with CI) per variable and method, over all cases."""
    s = scores[scores["by"] == "all"]
    wide = s.pivot_table(index=["variable", "method"], columns="metric", values="value", sort=False)
    cols = [
        c for c in ("n", "crps", "crpss", "crpss_lo", "crpss_hi", "pit_max_dev", "spread_skill")
    ]
    return wide.reindex(columns=[c for c in cols if c in wide.columns])


def _not_runnable(name: str) -> str:
    """Why dataset ``name`` cannot be the demo's, or ``""`` when it can."""
    from probcast.data.registry import DatasetError, get_info

    try:
        info = get_info(name)
    except DatasetError as err:
        return str(err)
    if name in benchmark_names():
        return ""
    what = "is a format sample" if info.kind != "benchmark" else "has no fixed test split"
    return (
        f"{name!r} {what}; the demo needs a benchmark dataset with a fixed test split, one "
        f"of: {', '.join(benchmark_names())} (see 'probcast data list')"
    )


def benchmark_names() -> list[str]:
    """Every preparable benchmark dataset of the registry that has a fixed test split.

    (icp-wrf-precip-grid has none: nine cases for gridded inference and products.)
    """
    from probcast.data.prepare import preparable
    from probcast.data.registry import get_info

    return [n for n in preparable() if get_info(n).kind == "benchmark" and get_info(n).split]


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``probcast demo``."""
    p = argparse.ArgumentParser(prog="probcast demo", description=__doc__.split("\n")[0])
    p.add_argument(
        "--dataset", help=f"registry dataset id (default: {DEFAULT_DATASET}; not with --all)"
    )
    p.add_argument("--all", action="store_true", help="every benchmark dataset")
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--skill-table", default="", help="write the skill markdown table here")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="train from scratch (default: reuse or resume the model of an earlier run)",
    )
    return p


def _output_problem(out: Path, table: Path | None) -> str:
    """What keeps the demo from writing its outputs ("" when nothing), checked first."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory; expected a folder"
    if table is not None and table.is_dir():
        return f"--skill-table {table}: is a directory; expected a Markdown file"
    existed = table is None or table.exists()
    try:
        if table is not None:
            table.open("a").close()  # written at the very end: can it be?
    except OSError as err:
        return f"--skill-table {table}: cannot be written: {io.os_reason(err)}"
    if not existed and table is not None:
        table.unlink()
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run ``probcast demo``; returns the exit status.

    Arguments other than the listed options must be ``--config.field=value`` overrides.
    """
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments {bad} (config overrides are --config.x.y=value)")
    if args.all and args.dataset is not None:
        parser.error(f"--all runs every benchmark dataset; do not give --dataset {args.dataset}")
    problem = _output_problem(Path(args.out), Path(args.skill_table) if args.skill_table else None)
    if problem:
        parser.error(problem)
    import pandas as pd

    from probcast.logs import configure_logging

    configure_logging()
    out = Path(args.out)
    names = benchmark_names() if args.all else [args.dataset or DEFAULT_DATASET]
    for name in names:
        problem = _not_runnable(name)
        if problem:
            print(f"probcast demo: {problem}", file=sys.stderr)
            return 1
    runs: list[DatasetRun] = []
    for name in names:
        start = time.perf_counter()
        if args.fresh:
            shutil.rmtree(out / name / "model", ignore_errors=True)
        try:
            run = run_dataset(name, out, overrides=rest)
        except (ValueError, FileNotFoundError, KeyError) as err:
            print(f"probcast demo: {err}", file=sys.stderr)
            return 1
        runs.append(run)
        with pd.option_context("display.width", 140, "display.float_format", "{:.4f}".format):
            print(f"\n== {name} ({time.perf_counter() - start:.0f} s) ==")
            table = overall_table(run.scores)
            fmt = {"n": lambda v: f"{v:.0f}"} if "n" in table.columns else {}
            print(table.to_string(formatters=fmt, na_rep="-"))
        for note in run.notes:
            print(note)
        print(f"report: {run.out_dir / 'report.html'}")
    if args.skill_table:
        from probcast.bench.skill_table import write_skill_table

        write_skill_table(runs, Path(args.skill_table))
        print(f"skill table: {args.skill_table}")
    summary = {r.name: r.seconds for r in runs}
    io.write_json(out / "timings.json", summary)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
