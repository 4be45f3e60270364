"""The OS-fault matrix of the commands, counted (the table of docs/faults.md).

Runs every case of ``tests/faults/faulthelp.py`` (the cases of
``tests/faults/test_faults_os.py``) and prints the counts per verdict as a Markdown table,
then each case that is not a clear error. The full-disk cases need root (a small tmpfs);
without it they are left out of the counts.

    .venv/bin/python benchmarks/fault_matrix.py            # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/fault_matrix.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))

import faulthelp


def run_matrix(root: Path) -> list[faulthelp.Result]:
    """Every case, in the order of ``faulthelp.CASES``."""
    ro = faulthelp.read_only_folder(root)
    if ro is None:
        raise SystemExit("no read-only folder can be made here")
    paths = {**faulthelp.write_inputs(root, ro), "ro": ro, "work": root / "work"}
    full = faulthelp.full_folder(root)
    if full is not None:
        paths["full"] = full
    try:
        done: dict[str, faulthelp.Result] = {}
        for case in faulthelp.CASES:
            if case.group == "plain" or (case.group == "full" and full is not None):
                done[case.id] = faulthelp.run_case(case, paths)
        limited = [c for c in faulthelp.CASES if c.group == "limit"]
        results, _ = faulthelp.run_limited(limited, paths)
        done.update({r.id: r for r in results})
    finally:
        for mount in (root / "ro", root / "full"):
            faulthelp.unmount(mount)
    return [done[c.id] for c in faulthelp.CASES if c.id in done]


def table(results: list[faulthelp.Result]) -> str:
    """The counts as a Markdown table."""
    counts = faulthelp.counts(results)
    head = "| " + " | ".join(counts) + " |"
    rule = "|" + "|".join("---:" for _ in counts) + "|"
    return "\n".join([head, rule, "| " + " | ".join(str(v) for v in counts.values()) + " |"])


def main() -> int:
    """Run the matrix and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every case's result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        results = run_matrix(Path(tmp))
    print(table(results))
    for r in results:
        if r.verdict != "clear":
            print(f"- {r.id}: {r.verdict}: {r.why or r.message}"[:400])
    if args.json:
        Path(args.json).write_text(json.dumps([faulthelp.asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
