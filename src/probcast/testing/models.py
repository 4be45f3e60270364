"""Untrained but complete :class:`~probcast.model.predictor.TrainedModel` objects for tests.

The networks are freshly initialised (no training: milliseconds, not minutes); the feature
spec, the local-EMOS blend and the training domain are fitted on a synthetic table exactly as
training fits them, so prediction code paths (fallbacks, applicability) run for real.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from probcast.baselines.emos import fit_emos
from probcast.configs import tiny
from probcast.features import FeatureSpec
from probcast.model.domain import domain_from_frame
from probcast.model.network import build_model
from probcast.model.predictor import TrainedModel


def untrained_model(
    table: pd.DataFrame,
    heads: Mapping[str, str],
    *,
    blend: Sequence[str] = (),
    weight: float = 0.5,
    domain: bool = True,
    seed: int = 0,
) -> TrainedModel:
    """A model of ``heads`` whose spec, blend and domain are fitted on ``table``.

    Args:
        table: Canonical training table (``obs_<var>``/``fc_<var>`` per target).
        heads: Target -> family (or ``generative``).
        blend: Targets blended with local EMOS (fitted on ``table``, per station).
        weight: EMOS weight of the blend.
        domain: Record the training domain (``False``: a model from before it existed).
        seed: Initialisation seed of the network.
    """
    config = tiny.get_config()
    spec = FeatureSpec.fit(table, list(heads), config.features)
    net = build_model(
        spec.n_features,
        spec.n_stations,
        dict(heads),
        config.model,
        seed=seed,
        private=spec.own_features(),
    )
    mix = {
        var: {
            "weight": weight,
            "emos": fit_emos(table, var, family=heads[var], by_station=True).to_dict(),
        }
        for var in blend
    }
    return TrainedModel(
        config,
        spec,
        heads,
        [net],
        {"heads": dict(heads)},
        blend=mix,
        domain=domain_from_frame(spec.derive(table), spec.columns) if domain else None,
    )
