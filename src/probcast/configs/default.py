"""Default hyperparameters of the probabilistic station model.

Variants import this module and override a few fields (Flax examples style)::

    probcast train --config=default --workdir=runs/x --config.train.epochs=50
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Return the default configuration."""
    config = ml_collections.ConfigDict()

    config.data = data = ml_collections.ConfigDict()
    # Station table (CSV/Parquet) or a registry dataset name (its prepared train part).
    data.path = ""
    data.targets = ""  # comma list of variables; "" = every obs_<var> column
    data.split_date = ""  # ISO date: train only on init < split_date (raw tables)
    data.val_fraction = 0.15  # last part of the training period, for early stopping
    # Periods of tp/tmax/tmin ("tp:6,tmax:24", hours) for tables that do not record them
    # (probcast.periods); a table's own periods win, and must agree.
    data.periods = ""

    config.features = features = ml_collections.ConfigDict()
    features.predictors = ""  # comma list of columns; "" = every fc_* and stat_* column
    features.lead_time = True  # the lead time (hours) as a predictor
    features.statics = True  # latitude / longitude / altitude when present
    features.cyclic = True  # sin/cos hour of day (and day of year) of the valid time
    # Day of year: "auto" = only when the training period spans most of a year (else the
    # network could only extrapolate a within-period trend into the test season).
    features.day_of_year = "auto"
    features.missing = "impute"  # "impute" (mean + indicator) or "error"
    features.neighbourhood = "3,7"  # gridded data: k x k window edges (cells); "" = none
    # Recent forecast errors as predictors (probcast.recent): err_<var> = mean obs - fc of the
    # station over this many hours before its last observation known at init time (station
    # tables; 0 = off). Missing in operational inputs without observations: imputed.
    features.recent_error_hours = 24.0

    config.model = model = ml_collections.ConfigDict()
    model.distributions = ""  # "var:name,..." overrides; default per variable
    model.generative = ""  # comma list of variables with a generative head, or "all"
    model.noise_dim = 8  # noise vector size of generative heads
    model.noise_to = "heads"  # "heads" or "trunk" (trunk: every target generative)
    model.head_hidden = 64  # hidden width of generative heads
    model.embed_dim = 8  # station embedding size (0 = none)
    # No embedding when the stations have fewer fit rows each on average (train.adapt).
    model.embed_min_rows = 50
    # Parametric heads add a linear (EMOS-like) function of the features to the trunk output.
    model.linear_skip = True
    # With several targets, err_<var> (and its missing indicator) enter only <var>'s head, not
    # the shared trunk: no cross-variable links from recent errors ("trunk": every head).
    model.recent_errors_to = "heads"
    model.hidden = 128  # the widest trunk; narrower on small data (train.adapt)
    model.rows_per_unit = 128  # width <= fit rows / rows_per_unit (0 = always model.hidden)
    model.n_layers = 2  # hidden layers of the shared trunk
    model.activation = "gelu"  # trunk activation (a flax.linen function name)
    model.dropout = 0.0  # dropout rate in the trunk (0 = none)
    model.layer_norm = False  # layer norm before each trunk activation
    model.residual = True  # residual connections between hidden trunk layers

    config.train = train = ml_collections.ConfigDict()
    train.seed = 0  # seed of initialisation, shuffling and noise draws
    train.n_seeds = 1  # networks trained with seeds seed..seed+n-1, combined at prediction
    train.batch_size = 512  # rows per optimisation step
    train.epochs = 100  # most epochs (early stopping usually ends sooner)
    train.learning_rate = 3e-3  # peak AdamW learning rate (warmup + cosine decay)
    train.warmup_epochs = 2  # epochs of linear warmup to the peak rate
    train.end_lr_factor = 0.05  # final learning rate as a fraction of the peak
    train.weight_decay = 1e-4  # AdamW weight decay
    train.grad_clip = 1.0  # global gradient-norm clip
    train.patience = 10  # epochs without a better validation CRPS before stopping
    # Time-blocked cross-validation (probcast.train.select): the training period cut into
    # this many blocks of init times; one network per block held out, stopped early on it;
    # blend weights and spread factors chosen on the out-of-fold predictions of every row;
    # the fold networks pooled as the final ensemble (no refit; ceil(n_seeds / cv_folds)
    # networks per fold, at least cv_seeds_per_fold). 0 or 1: one validation block, the
    # last part of the period.
    train.cv_folds = 5
    # Networks (seeds) per fold at least: two halve the seed noise of the pooled ensemble
    # (test CRPS lower on 9 of the 11 benchmark targets, docs/model.md) for twice the
    # training time of a cross-validated table.
    train.cv_seeds_per_fold = 2
    train.cv_max_rows = 1_000_000  # larger tables use one validation block (0 = no limit)
    # One spread factor per target fitted on the validation rows after training
    # (probcast.train.calibrate): corrects the under-dispersion of a network on unseen weeks.
    train.calibrate_spread = True
    # With cv_folds: a monotone PIT recalibration map per target, fitted on the out-of-fold
    # predictions and kept only where a nested-CV gate finds it lowers the held-out CRPS,
    # or corrects a held-out PIT miscalibration beyond sampling noise without raising it
    # (probcast.train.recalibrate). Not used without cross-validation.
    train.recalibrate = True
    # Largest relative rise of the held-out CRPS accepted for a map that corrects such a
    # miscalibration (0.005: sydney-rain's test PIT max-bin deviation 0.045 -> 0.017, CRPS
    # -0.2 %, but boston-metar ws10's CRPS +1.4 %; docs/model.md).
    train.recalibrate_max_cost = 0.0
    # False: that map on every target with enough out-of-fold rows, without the CRPS gate
    # (calibration first: verif-norway-precip's test PIT max-bin deviation 0.041 -> 0.019
    # for a 1.2 % higher CRPS; docs/model.md).
    train.recalibrate_gate = True
    # Pool each target with local EMOS fitted on the same rows, with the EMOS weight in
    # [0, 1] chosen on the validation rows (probcast.train.blend): the classical fallback
    # where the network has too little data.
    train.blend_emos = True
    # Most rows local EMOS is fitted on (a station-stratified subset of larger tables;
    # probcast.train.blend.emos_rows); 0 fits on all rows.
    train.emos_max_rows = 1_000_000
    # After early stopping on the validation rows, retrain each network on all training
    # rows for its selected number of epochs (train.loop._refit).
    train.refit = True
    train.ensemble_members = 16  # noise draws per row for generative heads (fair CRPS)
    train.eval_batch_size = 8192  # rows per validation forward pass
    train.compute_dtype = "float32"  # "bfloat16", or "float16" for T4-class GPUs (params float32)
    train.log_every = 1  # epochs between progress lines
    # Seconds between checkpoint saves (and always after the last epoch); a killed training
    # resumes from the last save. 0 saves after every epoch.
    train.checkpoint_every_s = 30.0
    # Out-of-core training (probcast.train.stream; docs/model.md "Out-of-core training"):
    # stream the fit rows of data.path (a Parquet file or dataset directory) from disk in
    # chunks instead of holding the table in memory.
    train.stream = False
    # Stream automatically when the Parquet table's estimated in-memory size (rows x columns
    # x 8 bytes, from its metadata) exceeds this many GiB; 0 = only with train.stream.
    train.stream_above_gib = 0.0
    train.stream_chunk_rows = 262_144  # rows per device chunk (rounded down to whole batches)
    train.stream_shuffle_rows = 262_144  # rows kept in the host shuffle buffer between chunks
    train.stream_read_rows = 65_536  # most rows of one Parquet record batch read at once
    # Most validation rows held in memory when streaming: a uniform sample (0 = all of them)
    train.stream_val_max_rows = 500_000

    config.tracking = tracking = ml_collections.ConfigDict()
    tracking.backend = "mlflow"  # "mlflow", "wandb" or "none"
    tracking.uri = ""  # "" = sqlite:///<workdir>/../mlruns.db
    tracking.experiment = "probcast"  # MLflow experiment / W&B project name
    tracking.run_name = ""  # name of the tracked run ("" = <data>-<config>-<UTC yyyymmddTHHMM>)
    # How seed networks are pooled, batch sizes and member counts are chosen per prediction
    # request (probcast.predict.request.PredictRequest), not frozen at training.
    return config
