"""Small and fast configuration for CPU tests."""

from __future__ import annotations

import ml_collections

from probcast.configs import default


def get_config() -> ml_collections.ConfigDict:
    """Return the default configuration shrunk for tests."""
    config = default.get_config()
    config.model.hidden = 16
    config.model.n_layers = 1
    config.model.embed_dim = 2
    config.model.noise_dim = 2
    config.model.head_hidden = 8
    config.train.batch_size = 64
    config.train.epochs = 3
    config.train.patience = 2
    config.train.ensemble_members = 4
    config.train.eval_batch_size = 1024
    config.train.warmup_epochs = 0
    config.train.blend_emos = False  # tested on its own (tests/train/test_train_blend.py)
    config.train.cv_folds = 0  # tested on its own (tests/train/test_train_folds.py)
    config.tracking.backend = "none"
    return config
