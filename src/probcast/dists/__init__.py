"""The predictive distribution: a leaf package that every other stage uses.

- :mod:`~probcast.dists.registry`: the parametric families (closed-form CRPS, CDF, quantile
  function, sampling; all in ``jax.numpy``), by name, and the generative-head marker.
- :mod:`~probcast.dists.predictive`: :class:`Predictive`, one variable's forecast for a set
  of cases (parameters, members, quantiles or a point value) with its scores and summaries.
- :mod:`~probcast.dists.pooling`: combining several predictive distributions (seed networks,
  the EMOS blend).
- :mod:`~probcast.dists.ensemble`: the CRPS of an ensemble.
- :mod:`~probcast.dists.pit`: the randomised PIT (training's recalibration and verification).

Nothing here imports any other part of probcast except :mod:`probcast.schema`.
"""

from probcast.dists.ensemble import crps_ensemble
from probcast.dists.predictive import KINDS, Kind, Predictive
from probcast.dists.registry import (
    DISTRIBUTIONS,
    GENERATIVE,
    Distribution,
    default_for,
    get,
    is_generative,
    quantiles,
)

__all__ = [
    "DISTRIBUTIONS",
    "GENERATIVE",
    "KINDS",
    "Distribution",
    "Kind",
    "Predictive",
    "crps_ensemble",
    "default_for",
    "get",
    "is_generative",
    "quantiles",
]
