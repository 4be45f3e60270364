"""Out-of-core training: a Parquet table larger than memory, streamed in chunks.

With ``train.stream = True`` (or automatically when ``train.stream_above_gib > 0`` and the
table's estimated in-memory size exceeds it) :func:`probcast.train.loop.train` runs
:func:`train_stream` instead of loading ``data.path`` (a Parquet file or a dataset directory
such as the output of ``probcast data build``) whole:

1. a narrow pass (times, targets) finds the validation cut as
   :func:`probcast.split.validation_split` does (:class:`~.stream_source.ParquetSource`);
2. a full pass fits the feature spec exactly (:mod:`.stream_stats`), counts the rows, keeps
   the validation rows (small: they stay in memory, as in memory training) and a uniform
   random sample of about ``train.emos_max_rows`` usable rows, the same fraction of every
   station's rows: local EMOS of the blend, its refit and the quantiles of ``domain.json``
   use it (the domain's row count, stations, lead range, minima and maxima are exact);
3. each epoch streams the fit rows through :class:`~.stream_chunks.FitStream` into the
   usual jit-compiled epoch scan; checkpoints, resume, early stopping, the EMOS blend, the
   spread calibration and the refit (streaming all training rows) work as in memory.

The data fingerprint in ``meta.json`` is the sha256 of the usable rows in read order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import ml_collections
import numpy as np
import pandas as pd

from probcast.features import FeatureSpec
from probcast.model import artefact
from probcast.model.domain import Domain, domain_from_frame, save_domain
from probcast.model.network import head_families
from probcast.train import data as tdata
from probcast.train import loop, select
from probcast.train.adapt import adapt_to_data
from probcast.train.blend import EMOS_MAX_ROWS
from probcast.train.stream_chunks import FitStream
from probcast.train.stream_source import ParquetSource, estimated_gib, sample_mask
from probcast.train.stream_stats import Extent, SpecAccumulator
from probcast.train.tracking import default_run_name, flatten, make_tracker

log = logging.getLogger(__name__)


def wanted(config: ml_collections.ConfigDict) -> bool:
    """Whether ``config`` asks for out-of-core training (see the module docstring)."""
    train = config.train
    if bool(train.get("stream", False)):
        return True
    limit = float(train.get("stream_above_gib", 0.0))
    path = Path(str(config.data.path))
    if limit <= 0 or not (path.is_dir() or path.suffix.lower() in (".parquet", ".pq")):
        return False
    size = estimated_gib(path) if path.exists() else 0.0
    if size > limit:
        log.info("%s: about %.1f GiB in memory > train.stream_above_gib: streaming", path, size)
    return size > limit


@dataclasses.dataclass
class Scan:
    """What the full pass over the table found."""

    spec: FeatureSpec
    n_fit: int
    n_all: int
    val: pd.DataFrame
    sample: pd.DataFrame  # uniform sample of all usable rows
    sample_fit: pd.DataFrame  # its fit rows
    digest: str
    domain: Domain


def scan(source: ParquetSource, config: ml_collections.ConfigDict) -> Scan:
    """The full pass: feature spec, counts, validation rows, sample, fingerprint, domain."""
    cap = int(config.train.get("emos_max_rows", EMOS_MAX_ROWS)) or EMOS_MAX_ROWS
    rng = np.random.default_rng(int(config.train.seed))
    digest = hashlib.sha256()
    acc: SpecAccumulator | None = None
    n_fit = n_all = 0
    val, sample, sample_fit = _Rows(), _Rows(), _Rows()
    extent: Extent | None = None  # merged frame by frame: nothing kept per frame
    empty = pd.DataFrame()
    fraction = cap / max(1, source.rows)
    # validation rows held in memory: a uniform sample of about stream_val_max_rows of them
    # (the validation share of a table larger than memory is larger than memory too)
    val_cap = int(config.train.get("stream_val_max_rows", 0))
    val_rows = source.rows * float(config.data.val_fraction)
    val_fraction = min(1.0, val_cap / max(1.0, val_rows)) if val_cap > 0 else 1.0
    val_rng = np.random.default_rng(int(config.train.seed) + 1)
    for unit in range(len(source.units)):
        for frame in source.batches(unit, "all"):
            if not n_all:
                empty = frame.iloc[:0]
                digest.update(repr([(c, str(t)) for c, t in frame.dtypes.items()]).encode())
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            n_all += len(frame)
            is_fit, is_val = source.select(frame)
            if acc is None:  # columns and options only: fitted again from the moments
                template = FeatureSpec.fit(frame, source.targets, config.features)
                acc = SpecAccumulator(template, config.features)
                extent = Extent(template.columns)
            if is_fit.any():
                acc.add(frame[is_fit])
                n_fit += int(is_fit.sum())
            if is_val.any():
                val.add(frame[is_val & sample_mask(val_rng, len(frame), val_fraction)])
            pick = sample_mask(rng, len(frame), fraction)
            sample.add(frame[pick])
            sample_fit.add(frame[pick & is_fit])
            assert extent is not None
            extent.add(frame)
    if acc is None or extent is None or not n_fit:
        raise ValueError(f"{source.path}: no fit rows (all rows fall in the validation period)")
    spec = acc.spec()
    if val_fraction < 1.0:
        log.info("validation: a uniform %.3g of its rows (train.stream_val_max_rows)", val_fraction)
    whole = sample.frame(empty)
    domain = _domain(whole, spec, n_all, extent)
    return Scan(
        spec,
        n_fit,
        n_all,
        val.frame(whole.iloc[:0]),
        whole,
        sample_fit.frame(whole.iloc[:0]),
        digest.hexdigest(),
        domain,
    )


class _Rows:
    """Rows collected frame by frame, merged every ``every`` frames.

    A large table has thousands of record batches: the overhead of as many small frames is
    not kept, and every row is copied once more at most.
    """

    def __init__(self, every: int = 64) -> None:
        self.every = every
        self.merged: list[pd.DataFrame] = []
        self.pending: list[pd.DataFrame] = []

    def add(self, rows: pd.DataFrame) -> None:
        """Keep ``rows`` (nothing for no rows)."""
        if len(rows):
            self.pending.append(rows)
        if len(self.pending) >= self.every:
            self.merged.append(pd.concat(self.pending, ignore_index=True))
            self.pending = []

    def frame(self, empty: pd.DataFrame) -> pd.DataFrame:
        """All the rows kept, in order (``empty`` if none)."""
        parts = [*self.merged, *self.pending]
        return pd.concat(parts, ignore_index=True) if parts else empty


def _domain(sample: pd.DataFrame, spec: FeatureSpec, rows: int, extent: Extent) -> Domain:
    """Quantiles from the sample; rows, stations, lead range and end points exact."""
    domain = domain_from_frame(sample, spec.columns)
    low, high = extent.ranges()
    features = {}
    for col, values in domain.features.items():
        lo, hi = low.get(col, values[0]), high.get(col, values[-1])
        features[col] = (min(lo, values[0]), *values[1:-1], max(hi, values[-1]))
    return dataclasses.replace(
        domain,
        rows=rows,
        lead_min=extent.lead_min,
        lead_max=extent.lead_max,
        stations=tuple(sorted(extent.stations)),
        features=features,
        valid_until=extent.valid_until,
    )


def train_stream(
    config: ml_collections.ConfigDict, workdir: Path, name: str
) -> list[loop.SeedResult]:
    """:func:`probcast.train.loop._train` for a table streamed from disk (module docstring)."""
    if float(config.features.get("recent_error_hours", 0.0)) > 0:
        # err_<var> needs each station's history in time order: not from shuffled chunks
        log.info("streamed training: no recent-error predictors (features.recent_error_hours)")
        config = ml_collections.ConfigDict(config.to_dict())
        config.features.recent_error_hours = 0.0
    cfg = config.train
    source = ParquetSource.open(
        str(config.data.path),
        str(config.data.targets),
        str(config.data.split_date),
        float(config.data.val_fraction),
        int(cfg.stream_read_rows),
    )
    found = scan(source, config)
    where = f"stream:{source.path}"
    known = tdata.known_periods(
        source.periods, str(config.data.periods), where, source.schema.names
    )
    found.domain = dataclasses.replace(found.domain, periods=known)
    spec, val_table = found.spec, found.val
    config = adapt_to_data(config, found.n_fit, len(spec.stations))
    heads = head_families(spec.targets, config.model)
    refit = bool(config.train.refit) and len(val_table) > 0
    select_dir = workdir / "selection" if refit else workdir
    select_dir.mkdir(exist_ok=True)
    for d in {workdir, select_dir}:
        artefact.write_run_files(d, config, spec, heads, fingerprint=found.digest, source=where)
        save_domain(d, found.domain)
    tags = {
        "git_commit": artefact.git_commit() or "unknown",
        "data_fingerprint": found.digest,
        "data_source": where,
    }
    tracker = make_tracker(config.tracking, workdir, tags, default_run_name(where, name))
    try:
        tracker.log_params(flatten(config.to_dict()))
        stream = FitStream(source, spec, "fit", found.n_fit, config.train)
        setup = loop._setup(config, spec, heads, None, val_table, tracker, stream=stream)
        log.info(
            "streamed fit rows %d, validation rows %d, features %d, heads %s, devices %d",
            found.n_fit,
            len(val_table),
            spec.n_features,
            heads,
            setup.mesh.size,
        )
        results = [loop.train_seed(setup, select_dir, i) for i in range(int(cfg.n_seeds))]
        artefact.write_summary(select_dir, [dataclasses.asdict(r) for r in results])
        select.blend_with_emos(config, select_dir, found.sample_fit, val_table)
        select.calibrate_spread(config, select_dir, val_table)
        if refit:
            _refit(setup, source, found, workdir, results)
    except BaseException:
        tracker.end("FAILED")
        raise
    for file in ("config.json", "features.json", "meta.json"):
        tracker.log_artifact(workdir / file)
    tracker.end()
    return results


def _refit(
    setup: loop.Setup,
    source: ParquetSource,
    found: Scan,
    workdir: Path,
    selected: list[loop.SeedResult],
) -> None:
    """:func:`probcast.train.loop._refit` streaming all training rows."""
    config = setup.config
    stream = FitStream(source, setup.spec, "all", found.n_all, config.train)
    empty = found.val.iloc[:0]
    refit = loop._setup(config, setup.spec, setup.heads, None, empty, setup.tracker, stream)
    refit.tag = "refit/"
    log.info("refit on all %d training rows (streamed)", found.n_all)
    done = [
        loop.train_seed(refit, workdir, i, max_epochs=r.best_epoch) for i, r in enumerate(selected)
    ]
    select.carry_to_refit(config, workdir, found.sample)
    artefact.write_summary(workdir, [dataclasses.asdict(r) for r in done])
