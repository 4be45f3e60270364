"""verif-norway-precip: 6-h precipitation at 147 Norwegian stations (small data)."""

from __future__ import annotations

import ml_collections

from probcast.configs import default


def get_config() -> ml_collections.ConfigDict:
    """Return the configuration used for the verif-norway-precip benchmark."""
    config = default.get_config()
    config.data.path = "verif-norway-precip"
    config.model.hidden = 64
    config.train.n_seeds = 3
    config.train.epochs = 60
    return config
