"""Options of a prediction request that need no model: how to pool, batch and police rows.

Kept apart from :mod:`probcast.model.predictor` and :mod:`probcast.model.applicability`
(which import JAX) so that a request, and a pipeline file that describes one, is checked
without loading the numerical stack.
"""

from __future__ import annotations

import dataclasses

from probcast.defaults import check_combine

MODES = ("warn", "flag", "refuse")
"""``warn``: a warning line only; ``flag``: the ``applicability`` column and the warning;
``refuse``: as ``flag``, and an error for a row beyond the hard tolerance."""


@dataclasses.dataclass(frozen=True)
class DomainPolicy:
    """How prediction treats rows outside the training domain (a request option).

    Attributes:
        mode: One of :data:`MODES`.
        tolerance: Soft margin, as a fraction of the training q0.001-q0.999 width (lead
            times: strictly the training range), beyond which a row is flagged.
        limit: Hard margin (same unit, >= ``tolerance``) beyond which ``refuse`` raises.
    """

    mode: str = "flag"
    tolerance: float = 0.1
    limit: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"extrapolation must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= self.tolerance <= self.limit:
            raise ValueError(
                "extrapolation tolerances must satisfy 0 <= tolerance <= limit, got "
                f"tolerance={self.tolerance}, limit={self.limit}"
            )


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """How a trained model predicts (chosen per request, not at training).

    Attributes:
        combine: Pool of seed networks: ``vincentize`` (quantile average) or ``mixture``.
        batch_size: Rows per forward pass (bounded further by the member count).
        quantile_members: Members drawn per row for a generative head's quantiles and
            probabilities.
    """

    combine: str = "vincentize"
    batch_size: int = 65536
    quantile_members: int = 1000

    def __post_init__(self) -> None:
        check_combine(self.combine)
        if self.batch_size < 1 or self.quantile_members < 1:
            raise ValueError(
                f"batch_size and quantile_members must be >= 1, got {self.batch_size}, "
                f"{self.quantile_members}"
            )
