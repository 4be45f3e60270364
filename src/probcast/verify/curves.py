"""Training curves of a model in the verification report (``probcast verify --model DIR``).

The training loop writes every seed network's per-epoch record to
``<workdir>/seed_<i>/history.json`` (and, when it retrained on all rows after early
stopping, the selection run with its validation scores to ``<workdir>/selection/seed_<i>/``).
:func:`read_histories` reads them; :func:`training_curves` draws the training and validation
CRPS per epoch, one panel per target, one colour per seed network.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from probcast.verify import plots

History = list[dict[str, float]]
RUNS = (("selection", "selection/seed_*"), ("refit", "seed_*"))
"""Where the histories are (under the model directory), by the name they are drawn with."""


def read_histories(model: str | Path) -> dict[str, dict[str, History]]:
    """``{run: {"seed 0": [record, ...]}}`` of a model directory (``run``: selection, refit).

    Without a retraining (``train.refit`` off or no validation rows) the histories of
    ``seed_*`` are the only run, named ``selection``.

    Raises:
        ValueError: ``model`` is not a directory or holds no readable ``history.json``.
    """
    root = Path(model)
    if not root.is_dir():
        raise ValueError(f"--model {root}: not a directory; expected a probcast train workdir")
    out: dict[str, dict[str, History]] = {}
    for run, pattern in RUNS:
        found = {}
        for path in sorted(root.glob(f"{pattern}/history.json")):
            try:
                records = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: cannot read the training history: {err}") from None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise ValueError(f"{path}: expected a JSON list of per-epoch records")
            found[f"seed {path.parent.name.removeprefix('seed_')}"] = records
        if found:
            out[run] = found
    if "refit" in out and "selection" not in out:
        out = {"selection": out["refit"]}
    if not out:
        raise ValueError(
            f"--model {root}: no seed_*/history.json; expected the workdir of a finished "
            "probcast train"
        )
    return out


def _targets(runs: dict[str, dict[str, History]]) -> list[str]:
    names: dict[str, None] = {}
    for seeds in runs.values():
        for records in seeds.values():
            for rec in records:
                for key in rec:
                    for prefix in ("train_crps_", "val_crps_"):
                        if key.startswith(prefix):
                            names[key[len(prefix) :]] = None
    return list(names)


def _series(records: History, key: str) -> tuple[list[float], list[float]]:
    pts = [(float(r["epoch"]), float(r[key])) for r in records if key in r and "epoch" in r]
    pts = [(e, v) for e, v in pts if math.isfinite(v)]
    return [e for e, _ in pts], [v for _, v in pts]


STYLES = {
    ("selection", "train"): "-",
    ("selection", "val"): "--",
    ("refit", "train"): ":",
}


def training_curves(runs: dict[str, dict[str, History]]) -> bytes | None:
    """PNG of the training and validation CRPS per epoch, one panel per target."""
    targets = _targets(runs)
    if not targets:
        return None
    ncols, nrows = plots._grid(len(targets), 3)
    size = (max(4.2 * ncols, plots.MIN_WIDTH_IN), 3.3 * nrows)
    fig, axes = plots._subplots(nrows, ncols, size, squeeze=False)
    seeds = list(dict.fromkeys(s for seeds in runs.values() for s in seeds))
    colour = {s: f"C{i % 10}" for i, s in enumerate(seeds)}
    flat = axes.ravel()
    for ax, var in zip(flat, targets, strict=False):
        for (run, part), style in STYLES.items():
            for seed, records in runs.get(run, {}).items():
                x, y = _series(records, f"{part}_crps_{var}")
                if x:
                    label = f"{seed} {part}" + (" (refit)" if run == "refit" else "")
                    ax.plot(x, y, ls=style, marker=".", color=colour[seed], label=label)
        ax.set(title=f"{var}: CRPS per epoch", xlabel="epoch", ylabel="CRPS")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in flat[len(targets) :]:
        ax.set_axis_off()
    return plots._png(fig)


def section(runs: dict[str, dict[str, History]], model: str | Path) -> str:
    """The report's training section: the curves and where they come from."""
    png = training_curves(runs)
    if png is None:
        return ""
    import base64

    data = base64.b64encode(png).decode("ascii")
    where = html.escape(str(model))
    note = (
        "solid: training CRPS, dashed: validation CRPS (early stopping)"
        + ("; dotted: retraining on all training rows" if "refit" in runs else "")
        + f". Model: {where}."
    )
    return (
        f'<h2>Training</h2><img alt="training curves: CRPS per epoch" '
        f'src="data:image/png;base64,{data}"><p class="meta">{note}</p>'
    )
