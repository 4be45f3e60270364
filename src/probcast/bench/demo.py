"""The main job: ``probcast demo`` runs the whole chain on benchmark datasets.

fetch -> prepare (fixed split) -> train -> predict the test period -> fit baselines on the
same training split -> verify every method -> HTML report and a printed table. With ``--all``
it runs every benchmark dataset and regenerates ``benchmarks/skill.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("probcast.bench.demo")

DEFAULT_DATASET = "verif-norway-precip"
MEMBERS = 51
DATASET_CONFIGS = {"verif-norway-precip": "norway_precip"}
"""Per-dataset config modules in ``probcast.configs`` whose name differs from the id."""
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


@dataclass
class DatasetRun:
    """What one dataset's run produced."""

    name: str
    scores: pd.DataFrame
    out_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def config_for(name: str, overrides: list[str] | None = None) -> Any:
    """Return the training config of dataset ``name`` (per-dataset file or the default).

    Args:
        name: Registry dataset id.
        overrides: ``field=value`` strings applied on top (as ``--config.field=value``).
    """
    import importlib

    from probcast.configs import available

    module = name.replace("-", "_")
    module = DATASET_CONFIGS.get(name, module if module in available() else "default")
    cfg = importlib.import_module(f"probcast.configs.{module}").get_config()
    cfg.data.path = name
    for item in overrides or []:
        key, value = item.split("=", 1)
        _set_field(cfg, key.removeprefix("config."), value)
    return cfg


def _set_field(cfg: Any, dotted: str, text: str) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    old = node[leaf]
    node[leaf] = type(old)(text) if not isinstance(old, bool) else text.lower() in ("1", "true")


def run_dataset(name: str, out: Path, *, overrides: list[str] | None = None) -> DatasetRun:
    """Run the whole chain on one registry dataset and write its report into ``out/name``."""
    from probcast.bench.external import REFERENCES, brier_table, reference_thresholds
    from probcast.data.prepare import prepare
    from probcast.data.registry import fetch
    from probcast.model.artefact import load
    from probcast.predict.station import predict_table
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
    train(cfg, out_dir / "model")
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = load(out_dir / "model")
    targets = list(model.targets)
    thresholds = {v: list(t) for v in targets if (t := _thresholds(v))}
    # prepare() already fetched and verified the files; only datasets with references of
    # their own need the paths again (fetch re-hashes every file, so skip it otherwise).
    files = fetch(name) if name in REFERENCES else {}
    ext = reference_thresholds(files, name)
    if ext:  # score every method at the thresholds of the dataset's own references too
        thresholds["tp"] = sorted(set(thresholds.get("tp", [])) | set(ext))
    pred = predict_table(
        model, test_table, members=MEMBERS, quantiles=QUANTILES, thresholds=thresholds
    )
    seconds["predict"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    forecasts, families = run_baselines(train_table, test_table, targets, members=MEMBERS)
    forecasts["probcast"] = pred
    families["probcast"] = {v: f for v, f in model.heads.items() if f != "generative"}
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
    meta = {**ver.meta, "dataset": name, "seconds": seconds}
    extra = {"diagnostics": ver.diagnostics, "stations": ver.stations.to_dict("records")}
    aggregate.write_scores(ver.scores, out_dir, meta=meta, extra=extra)
    report.write_report(ver, out_dir / "report.html", title=f"probcast: {name}")
    if ext:
        brier = brier_table(name, files, test_table, ver.scores)
        brier.to_csv(out_dir / "external_brier.csv", index=False)
        notes.append(external_summary(brier))
    seconds["verify"] = time.perf_counter() - t0
    return DatasetRun(name, ver.scores, out_dir, seconds, notes)


def external_summary(brier: pd.DataFrame) -> str:
    """Brier scores (method x threshold) as a markdown table, best per threshold in bold."""
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
    train: pd.DataFrame, test: pd.DataFrame, targets: list[str], *, members: int = MEMBERS
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, str]]]:
    """Fit every classical baseline on ``train`` and predict ``test``.

    Returns:
        ``({method: prediction table}, {method: {variable: family}})`` in the column
        conventions of :mod:`probcast.verify.forms` (``fc_<var>`` for the raw forecast).
    """
    from probcast.baselines import BASELINES, make
    from probcast.schema import KEY_COLUMNS

    keys = test[list(KEY_COLUMNS)].reset_index(drop=True)
    tables: dict[str, pd.DataFrame] = {}
    families: dict[str, dict[str, str]] = {}
    for method in BASELINES:
        cols: dict[str, Any] = {}
        for var in targets:
            kwargs = {"n_members": members} if method == "dressing" else {}
            fc = make(method, var, **kwargs).fit(train).predict(test)
            if method == "raw":
                cols[f"fc_{var}"] = test[f"fc_{var}"].to_numpy()
            elif fc.members is not None:
                cols.update(
                    {f"{var}_m{j:03d}": fc.members[:, j] for j in range(fc.members.shape[1])}
                )
            else:
                assert fc.params is not None and fc.family is not None
                cols.update({f"{var}_{k}": v for k, v in fc.params.items()})
                families.setdefault(method, {})[var] = fc.family
        tables[method] = pd.concat([keys, pd.DataFrame(cols)], axis=1)
    return tables, families


def _thresholds(var: str) -> tuple[float, ...]:
    from probcast.verify.evaluate import DEFAULT_THRESHOLDS

    return DEFAULT_THRESHOLDS.get(var, ())


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
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="registry dataset id")
    p.add_argument("--all", action="store_true", help="every benchmark dataset")
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--skill-table", default="", help="write the skill markdown table here")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="config override, e.g. --set train.epochs=5 (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``probcast demo``; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("absl", "orbax", "jax", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(args.out)
    names = benchmark_names() if args.all else [args.dataset]
    runs: list[DatasetRun] = []
    for name in names:
        start = time.perf_counter()
        run = run_dataset(name, out, overrides=args.set)
        runs.append(run)
        with pd.option_context("display.width", 140, "display.float_format", "{:.4f}".format):
            print(f"\n== {name} ({time.perf_counter() - start:.0f} s) ==")
            print(overall_table(run.scores).to_string())
        for note in run.notes:
            print(note)
        print(f"report: {run.out_dir / 'report.html'}")
    if args.skill_table:
        from probcast.bench.skill_table import write_skill_table

        write_skill_table(runs, Path(args.skill_table))
        print(f"skill table: {args.skill_table}")
    summary = {r.name: r.seconds for r in runs}
    (out / "timings.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
