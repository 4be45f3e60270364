"""Testing in production: replay real benchmark sets with an injected NWP fault.

For each scenario the test period of a benchmark set is replayed as daily cycles through a
tiny trained model (``configs/tiny.py``), ``probcast.monitor`` drift and skill monitoring
(observations arrive at their valid time), once clean and once with the fault injected from
cycle ``--fault-start`` on. Thresholds are calibrated on the training period only (see
``probcast.monitor.scenario``). Prints, per alert, the first cycle it fires after the fault
(0 = the fault's first cycle), its false alarms before the fault, and its alarms over the
whole clean replay.

    PROBCAST_DATA_MIRROR=/work/shared/data python benchmarks/drift_replay.py
    python benchmarks/drift_replay.py --scenario pnw-minus2 --window 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from probcast import io
from probcast.cli import main as probcast_main
from probcast.data.prepare import prepare
from probcast.monitor import replay as rp
from probcast.monitor import scenario
from probcast.monitor.report import json_safe

SCENARIOS = {
    "pnw-plus2": ("pnw-t2m", rp.Fault("fc_t2m", "bias", 2.0, 10)),
    "pnw-minus2": ("pnw-t2m", rp.Fault("fc_t2m", "bias", -2.0, 10)),
    "norway-x2": ("verif-norway-precip", rp.Fault("fc_tp", "scale", 2.0, 10)),
}


def train_tiny(train_path: Path, workdir: Path, epochs: int) -> Path:
    """Train the tiny configuration on ``train_path`` (one seed)."""
    rc = probcast_main(
        [
            "train",
            "--config=tiny",
            f"--workdir={workdir}",
            f"--config.data.path={train_path}",
            f"--config.train.epochs={epochs}",
            "--config.train.n_seeds=1",
            "--config.tracking.backend=none",
        ]
    )
    if rc != 0:
        raise SystemExit(f"training on {train_path} failed ({rc})")
    return workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", nargs="*", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--window", type=float, default=3.0, help="skill window (days)")
    parser.add_argument("--drift-window", type=int, default=3, help="cycles pooled by drift")
    parser.add_argument("--fault-start", type=int, default=10, help="first faulty cycle")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="probcast-drift-replay-"))
    models: dict[str, Path] = {}
    out = []
    print(
        "| scenario | alert | first firing (cycles after fault) | false alarms before fault "
        "| alarms in clean replay | replay s |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.scenario:
        dataset, fault = SCENARIOS[name]
        fault = rp.Fault(fault.column, fault.kind, fault.amount, args.fault_start)
        prepared = prepare(dataset)
        if dataset not in models:
            models[dataset] = train_tiny(prepared.paths["train"], root / dataset, args.epochs)
        t0 = time.time()
        res = scenario.run(
            prepared.train,
            prepared.test,
            scenario.model_forecaster(models[dataset]),
            fault,
            window_days=args.window,
            drift_window=args.drift_window,
            workdir=root / name,
        )
        seconds = time.time() - t0
        label = f"{name} ({res['fault']}, {res['cycles']} cycles)"
        for r in res["rows"]:
            first = "never" if r["first_after_fault"] is None else str(r["first_after_fault"])
            print(
                f"| {label} | {r['alert']} | {first} | {r['false_alarms']} / "
                f"{r['clean_cycles']} | {r['clean_replay_alarms']} / {res['cycles']} "
                f"| {seconds:.0f} |"
            )
        res.pop("results")
        out.append({"scenario": name, **res, "seconds": seconds})
    if args.json:
        io.write_json(Path(args.json), json_safe(out))
    print(json.dumps({"thresholds": json_safe(out[-1]["config"]) if out else {}}, default=str))


if __name__ == "__main__":
    main()
