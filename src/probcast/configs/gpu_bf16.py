"""Large batches with bfloat16 compute for a GPU."""

from __future__ import annotations

import ml_collections

from probcast.configs import default


def get_config() -> ml_collections.ConfigDict:
    """Return the default configuration for one or more GPUs."""
    config = default.get_config()
    config.model.hidden = 512
    config.train.batch_size = 8192
    config.train.learning_rate = 5e-3
    config.train.compute_dtype = "bfloat16"
    config.train.eval_batch_size = 65536
    return config
