"""Choices made after the networks are trained: the EMOS blend weight and the spread factor.

Both are fitted on held-out rows: the validation rows of the last part of the training
period (:func:`blend_with_emos`, :func:`calibrate_spread`), or, with time-blocked
cross-validation (``train.cv_folds``), the out-of-fold predictions of every training row
(:func:`select_on_folds`): each fold's networks and local EMOS predict the block they did
not see, and one weight and one factor per target are chosen on all of them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
import pandas as pd

from probcast.baselines.emos import fit_emos
from probcast.dists.pooling import blend_params
from probcast.io import write_json, write_text
from probcast.model import artefact
from probcast.train import recalibrate
from probcast.train.blend import (
    EMOS_MAX_ROWS,
    MIN_VAL_ROWS,
    choose_weight,
    emos_rows,
    fit_blend,
    pad_for,
    refit_emos,
)
from probcast.train.calibrate import calibratable, fit_spread_factor, scaled

log = logging.getLogger(__name__)


def blend_with_emos(
    config: ml_collections.ConfigDict, workdir: Path, fit_table: Any, val_table: Any
) -> None:
    """Choose per target the weight of local EMOS on the validation rows (``blend.json``).

    Skipped (and any old file removed) when ``train.blend_emos`` is off or there are no
    validation rows; see :mod:`probcast.train.blend`.
    """
    path = Path(workdir) / "blend.json"
    path.unlink(missing_ok=True)
    if not bool(config.train.blend_emos) or not len(val_table):
        return
    cap = int(config.train.get("emos_max_rows", EMOS_MAX_ROWS))
    pad = pad_for(fit_table, val_table)  # the refit's EMOS on all rows: the same kernels
    blend = fit_blend(artefact.load(workdir, verify=False), fit_table, val_table, cap, pad)
    write_json(path, {"blend": blend, "rows": len(val_table)})


def calibrate_spread(config: ml_collections.ConfigDict, workdir: Path, val_table: Any) -> None:
    """Fit one spread factor per target on the validation rows (``calibration.json``).

    Skipped (and any old file removed) when ``train.calibrate_spread`` is off or there are
    no validation rows. The factor is fitted for the default (Vincentized) pool of the seed
    networks, the mean of their parameters; a request for a mixture pool applies it to
    every network's scale.
    """
    path = Path(workdir) / "calibration.json"
    path.unlink(missing_ok=True)
    if not bool(config.train.calibrate_spread) or not len(val_table):
        return
    model = artefact.load(workdir, verify=False)
    pooled = model.params(val_table)
    factors = {}
    for var, params in pooled.items():
        y = val_table[f"obs_{var}"].to_numpy(dtype="float64")
        factors[var] = fit_spread_factor(model.heads[var], params, y)
    log.info("spread factors fitted on %d validation rows: %s", len(val_table), factors)
    write_json(path, {"spread_factor": factors, "rows": len(val_table)})


def select_on_folds(
    config: ml_collections.ConfigDict,
    workdir: Path,
    folds: list[tuple[pd.DataFrame, pd.DataFrame]],
    per_fold: int,
) -> None:
    """Blend weights and spread factors from out-of-fold predictions (cross-validation).

    Networks ``i * per_fold .. (i + 1) * per_fold - 1`` of the artefact in ``workdir`` were
    trained without fold ``i``'s held-out block; each predicts that block, and local EMOS
    fitted on the fold's fit rows predicts it too, so every training row gets a prediction
    from models that never saw it. One EMOS weight per target (:data:`blend.WEIGHTS`) and
    then one spread factor of the blended distribution are chosen on all of them; the
    final local EMOS is fitted on all training rows. Writes ``blend.json`` and
    ``calibration.json`` (with the maps of :mod:`probcast.train.recalibrate`; removing
    stale ones first).
    """
    blend_path, calib_path = workdir / "blend.json", workdir / "calibration.json"
    blend_path.unlink(missing_ok=True)
    calib_path.unlink(missing_ok=True)
    model = artefact.load(workdir, verify=False)
    cap = int(config.train.get("emos_max_rows", EMOS_MAX_ROWS))
    use_blend = bool(config.train.blend_emos)
    net: dict[str, list[dict[str, np.ndarray]]] = {v: [] for v in model.parametric}
    emos: dict[str, list[dict[str, np.ndarray]]] = {v: [] for v in model.parametric}
    held_all = pd.concat([h for _, h in folds], ignore_index=True)
    # local EMOS on all rows first: the blend's final partner, and the start of each fold's
    # fit (a fold holds most of the rows: a few Newton steps from there)
    all_rows = emos_rows(held_all, cap) if use_blend else held_all
    pad = pad_for(all_rows)  # the folds' fits run on the same compiled kernels
    final = {
        var: fit_emos(all_rows, var, family=model.heads[var], by_station=True, pad_rows=pad)
        for var in net
        if use_blend and calibratable(model.heads[var])
    }
    for i, (fit, held) in enumerate(folds):
        oof = model.subset(range(i * per_fold, (i + 1) * per_fold)).params(held)
        fit = emos_rows(fit, cap) if use_blend else fit
        for var in net:
            net[var].append(oof[var])
            if var in final:
                family = model.heads[var]
                emos_model = fit_emos(
                    fit, var, family=family, by_station=True, start=final[var], pad_rows=pad
                )
                emos[var].append(emos_model.predict(held))
    blend: dict[str, Any] = {}
    factors: dict[str, float] = {}
    chosen: dict[str, dict[str, np.ndarray]] = {}  # the final OOF forecasts
    for var, parts in net.items():
        family = model.heads[var]
        y = held_all[f"obs_{var}"].to_numpy(dtype="float64")
        params = _concat(parts)
        if emos[var] and int(np.isfinite(y).sum()) >= MIN_VAL_ROWS:
            weight = choose_weight(family, params, _concat(emos[var]), y)
            log.info("EMOS blend weight of %s on %d out-of-fold rows: %.2f", var, len(y), weight)
            if weight > 0:
                params = blend_params(params, _concat(emos[var]), weight)
                blend[var] = {"weight": weight, "emos": final[var].to_dict()}
        if bool(config.train.calibrate_spread):
            factors[var] = fit_spread_factor(family, params, y)
        chosen[var] = scaled(params, factors.get(var, 1.0))
    sizes = [len(h) for _, h in folds]  # PIT recalibration maps that pass a nested-CV gate
    recal = recalibrate.on_folds(config, model.heads, chosen, held_all, sizes)
    if blend:
        write_json(blend_path, {"blend": blend, "rows": len(held_all), "folds": len(folds)})
    if factors or recal.get("recalibration"):
        log.info("spread factors fitted on %d out-of-fold rows: %s", len(held_all), factors)
        write_json(calib_path, {"spread_factor": factors, "rows": len(held_all), **recal})


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def carry_to_refit(config: ml_collections.ConfigDict, workdir: Path, emos_table: Any) -> None:
    """Carry the choices made on validation rows from ``workdir/selection`` to the refit.

    The spread factors are copied as they are; the blend keeps its weights with local EMOS,
    like the networks, refitted on all training rows (``emos_table``: the rows, or for a
    streamed training its sample of them). Stale files in ``workdir`` are removed first.
    """
    chosen = workdir / "selection"
    for name in ("calibration.json", "blend.json"):
        (workdir / name).unlink(missing_ok=True)
    if (chosen / "calibration.json").exists():
        write_text(workdir / "calibration.json", (chosen / "calibration.json").read_text())
    if (chosen / "blend.json").exists():
        blend = json.loads((chosen / "blend.json").read_text())
        cap = int(config.train.get("emos_max_rows", EMOS_MAX_ROWS))
        blend["blend"] = refit_emos(blend["blend"], emos_table, cap)
        write_json(workdir / "blend.json", blend)
