"""Settings that adapt to the size of the training data, resolved before training.

One default config serves tables from a few thousand to millions of rows. The rules here
change it where the data cannot support a setting, and the resolved values are what the
artefact's ``config.json`` records (so a resumed run resolves them identically):

* station embedding only when the stations have on average at least
  ``model.embed_min_rows`` fit rows each; with fewer (e.g. 900 stations with 23 rows each)
  a per-station vector fits noise. Unseen or thin stations then share the trunk, as EMOS
  "local" falls back to global coefficients below its ``min_rows``;
* trunk width at most ``n_rows / model.rows_per_unit`` rounded down to a power of two,
  never below :data:`MIN_HIDDEN` nor above ``model.hidden``: a 128-wide network on 5,000
  rows fits the noise of the fit period (chosen on the validation rows of seoul-ldaps,
  where width 32 lowered the validation CRPS of both targets by 3-4 %).
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import ml_collections

log = logging.getLogger(__name__)

MIN_HIDDEN = 32


def adapt_to_data(
    config: ml_collections.ConfigDict, n_rows: int, n_stations: int
) -> ml_collections.ConfigDict:
    """Return a copy of ``config`` with data-size rules applied (see the module docstring).

    Args:
        config: Full training config.
        n_rows: Fit rows (after the validation hold-out).
        n_stations: Distinct stations among them.
    """
    config = copy.deepcopy(config)
    model = config.model
    min_rows = int(model.embed_min_rows)
    per_station = n_rows / max(1, n_stations)
    if int(model.embed_dim) > 0 and min_rows > 0 and per_station < min_rows:
        log.info(
            "station embedding off: %.0f fit rows per station < model.embed_min_rows=%d",
            per_station,
            min_rows,
        )
        model.embed_dim = 0
    model.hidden = hidden_for(n_rows, int(model.hidden), int(model.rows_per_unit))
    return config


def hidden_for(n_rows: int, hidden: int, rows_per_unit: int) -> int:
    """Trunk width for ``n_rows`` fit rows (``rows_per_unit`` 0: ``hidden`` unchanged)."""
    if rows_per_unit <= 0 or hidden <= MIN_HIDDEN:
        return hidden
    cap = 2 ** math.floor(math.log2(max(1.0, n_rows / rows_per_unit)))
    width = min(hidden, max(MIN_HIDDEN, cap))
    if width != hidden:
        log.info(
            "trunk width %d for %d fit rows (model.rows_per_unit=%d)", width, n_rows, rows_per_unit
        )
    return width


def cv_folds(config: ml_collections.ConfigDict, table: Any) -> int:
    """Number of time-blocked cross-validation folds for ``table`` (0: one validation block).

    ``train.cv_folds`` folds when the table has at most ``train.cv_max_rows`` rows (0: any
    size) and at least two initialisation times per fold; otherwise the last
    ``data.val_fraction`` of the period is the validation block.
    """
    k = int(config.train.get("cv_folds", 0))
    cap = int(config.train.get("cv_max_rows", 0))
    if k < 0 or cap < 0:  # not "no cross-validation": a mistake
        raise ValueError(f"train.cv_folds and train.cv_max_rows must be >= 0, got {k} and {cap}")
    if k < 2:
        return 0
    inits = int(table["init_time"].nunique())
    if (cap and len(table) > cap) or inits < 2 * k:
        why = f"{len(table)} rows > train.cv_max_rows={cap}" if cap and len(table) > cap else ""
        why = why or f"{inits} initialisation times < 2 per fold"
        log.info(
            "train.cv_folds=%d: one validation block (the last data.val_fraction) instead (%s)",
            k,
            why,
        )
        return 0
    return k


def seeds_per_fold(config: ml_collections.ConfigDict, k: int) -> int:
    """Networks per fold of ``k``: ``ceil(n_seeds / k)``, at least ``train.cv_seeds_per_fold``."""
    least = int(config.train.get("cv_seeds_per_fold", 1))
    return max(-(-int(config.train.n_seeds) // k), least)


def with_seeds(config: ml_collections.ConfigDict, n: int) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``train.n_seeds = n`` (the networks of all folds)."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.train.n_seeds = n
    return config
