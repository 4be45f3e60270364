"""The training loop: fit, validate, stop early, checkpoint, resume, several seeds.

:func:`train` reads the table named in the config, holds out the last part of the training
period for validation (:func:`probcast.split.validation_split`), fits the feature spec on the
remaining rows, writes the artefact's metadata and trains ``config.train.n_seeds`` networks
one after another. Every epoch of a network runs as one jit-compiled ``lax.scan`` over
batches gathered on the device; its best (lowest validation loss) and latest states are
saved with orbax, so rerunning the same command after a crash resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from probcast import progress, recent
from probcast.features import FeatureSpec
from probcast.io import write_json
from probcast.model import artefact
from probcast.model.checkpoint import SeedCheckpoints
from probcast.model.domain import domain_from_frame, save_domain
from probcast.model.network import build_model, head_families
from probcast.split import time_blocks, validation_split
from probcast.train import data as tdata
from probcast.train.adapt import adapt_to_data, cv_folds, seeds_per_fold, with_seeds
from probcast.train.arguments import ConfigLike, train_arguments
from probcast.train.check import check_config, discard_on_failure
from probcast.train.evalset import evaluate, round_up, validation_chunks
from probcast.train.objective import StepFns, make_optimizer
from probcast.train.plausible import record_findings
from probcast.train.progress import epoch_record, epoch_summary, format_epoch, tracked_metrics
from probcast.train.select import (
    blend_with_emos,
    calibrate_spread,
    carry_to_refit,
    select_on_folds,
)
from probcast.train.tracking import Tracker, default_run_name, flatten, make_tracker
from probcast.train.workdir import claim, finish

log = logging.getLogger(__name__)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
"""``train.compute_dtype`` (checked by :func:`probcast.train.check.check_config`)."""


@dataclasses.dataclass
class SeedResult:
    """Outcome of training one network."""

    seed: int
    best_epoch: int
    best_val_loss: float
    val_crps: dict[str, float]
    epochs_run: int
    wall_s: float


@dataclasses.dataclass
class Setup:
    """Everything shared by the seed networks of one run."""

    config: ml_collections.ConfigDict
    spec: FeatureSpec
    heads: dict[str, str]
    fit: tdata.DeviceData | None  # None when streamed (``stream``)
    val: list[tdata.DeviceData]
    mesh: jax.sharding.Mesh
    tracker: Tracker
    batch_size: int
    steps: int
    fns: StepFns
    schedule: Any
    tag: str = ""  # prefix of tracked metrics and log lines ("refit/" in the refit phase)
    stream: Any = None  # out of core: a train.stream_chunks.FitStream instead of ``fit``
    rows: int = 0  # fit rows (``fit`` may hold masked padding rows after them)


def train(config: ConfigLike, workdir: str | Path, config_name: str = "") -> list[SeedResult]:
    """Train the model described by ``config`` into ``workdir`` (resuming if possible).

    ``config`` is a ``ConfigDict`` or a plain dict of one; the arguments
    (:mod:`probcast.train.arguments`) and the config (:func:`check.check_config`) are checked
    first. The workdir is locked while training (:mod:`probcast.train.workdir`), removed
    again if this call created it and failed before any network saved a checkpoint
    (:func:`check.discard_on_failure`); a model in it stays loadable until the data is read
    and the run found to be its own (:func:`artefact.write_run_files`); the completion
    marker is written last. ``config_name`` (``tiny``) names the tracked run.

    Returns:
        One result per seed network.

    Raises:
        TypeError, ValueError: Bad arguments, config or data; another run's workdir.
    """
    from probcast.train import stream  # out-of-core training (train.stream)

    config, workdir = train_arguments(config, workdir)
    check_config(config)
    run = stream.train_stream if stream.wanted(config) else _train
    start = time.perf_counter()
    with discard_on_failure(Path(workdir)), claim(Path(workdir)) as held:
        results = run(config, held, config_name)
        artefact.record_elapsed(held, time.perf_counter() - start)
        finish(held)
    return results


def _train(config: ml_collections.ConfigDict, workdir: Path, name: str) -> list[SeedResult]:
    # the usable rows, checked: suspect units, constant columns (train.plausible)
    table, source, digest, targets, findings = tdata.read_training(config)
    hours = float(config.features.get("recent_error_hours", 0.0))
    if not table.attrs.get("grid"):  # from the whole period: a held-out block's history too
        table = recent.with_recent_errors(table, targets, hours)
    k = cv_folds(config, table)
    # a fold's fit rows: recent errors again from their own observations (the block left out)
    folds = [(recent.again(f, targets, hours), h) for f, h in time_blocks(table, k)] if k else []
    if folds:  # every row is held out once; the fold networks are the final ensemble
        fit_table, val_table = table, table.iloc[:0]
        config = with_seeds(config, k * seeds_per_fold(config, k))
    elif float(config.data.val_fraction) > 0:
        fit_table, val_table = validation_split(table, float(config.data.val_fraction))
    else:
        fit_table, val_table = table, table.iloc[:0]
    fit_rows = min((len(f) for f, _ in folds), default=len(fit_table))
    config = adapt_to_data(config, fit_rows, int(fit_table["station"].nunique()))
    spec = FeatureSpec.fit(fit_table, targets, config.features)
    heads = head_families(targets, config.model)
    refit = bool(config.train.refit) and len(val_table) > 0
    select_dir = workdir / "selection" if refit else workdir
    select_dir.mkdir(exist_ok=True)
    domain = domain_from_frame(table, spec.columns)  # the training rows' domain
    for d in {workdir, select_dir}:
        artefact.write_run_files(d, config, spec, heads, fingerprint=digest, source=source)
        save_domain(d, domain)
    tags = {
        "git_commit": artefact.git_commit() or "unknown",
        "data_fingerprint": digest,
        "data_source": source,
    }
    run_name = default_run_name(str(config.data.path), name)
    tracker = make_tracker(config.tracking, workdir, tags, run_name)
    try:
        tracker.log_params(flatten(config.to_dict()))
        if folds:
            results = _cross_fit(config, spec, heads, folds, workdir, tracker)
        else:
            pad = len(table) if refit else 0  # the refit reuses the compiled epoch
            setup = _setup(config, spec, heads, fit_table, val_table, tracker, pad_rows=pad)
            log.info(
                "fit rows %d, validation rows %d, features %d, heads %s, devices %d",
                len(fit_table),
                len(val_table),
                spec.n_features,
                heads,
                setup.mesh.size,
            )
            n = int(config.train.n_seeds)
            results = [train_seed(setup, select_dir, i) for i in range(n)]
            artefact.write_summary(select_dir, [dataclasses.asdict(r) for r in results])
            blend_with_emos(config, select_dir, fit_table, val_table)
            calibrate_spread(config, select_dir, val_table)
            if refit:
                _refit(setup, table, workdir, results)
    except BaseException:
        tracker.end("FAILED")
        raise
    record_findings(workdir, findings)  # the data's warnings, in summary.json
    for name in ("config.json", "features.json", "meta.json"):
        tracker.log_artifact(workdir / name)
    tracker.end()
    return results


def _cross_fit(
    config: ml_collections.ConfigDict,
    spec: FeatureSpec,
    heads: dict[str, str],
    folds: list[tuple[Any, Any]],
    workdir: Path,
    tracker: Tracker,
) -> list[SeedResult]:
    """Train ``n_seeds / len(folds)`` networks per fold, each stopped early on its block.

    (``n_seeds`` here is the resolved count: folds x ``ceil(train.n_seeds / folds)``.)

    Network ``i * n + s`` is fold ``i``'s seed ``s``. The blend weights and spread factors
    are then chosen on the out-of-fold predictions (:func:`select.select_on_folds`); there
    is no refit: the fold networks, each trained on all but one block, are pooled.
    """
    n = int(config.train.n_seeds) // len(folds)
    results: list[SeedResult] = []
    pad, fns = max(len(fit) for fit, _ in folds), None  # one compiled epoch for every fold
    for i, (fit, held) in enumerate(folds):
        setup = _setup(config, spec, heads, fit, held, tracker, pad_rows=pad, fns=fns)
        fns = setup.fns
        setup.tag = f"fold{i + 1}/"
        log.info("fold %d/%d: fit rows %d, held out %d", i + 1, len(folds), len(fit), len(held))
        results += [train_seed(setup, workdir, i * n + s) for s in range(n)]
    artefact.write_summary(workdir, [dataclasses.asdict(r) for r in results])
    select_on_folds(config, workdir, folds, n)
    return results


def _refit(setup: Setup, table: Any, workdir: Path, selected: list[SeedResult]) -> None:
    """Retrain every seed network on fit + validation rows for its selected epoch count.

    The epoch count (and the learning-rate schedule it runs along) was chosen by early
    stopping on the validation rows; retraining on all rows lets the networks learn from the
    most recent weeks of the training period, the ones closest to the forecast period, as
    the classical baselines do. The spread factors fitted on validation carry over.
    """
    empty = table.iloc[:0]
    refit = _setup(
        setup.config, setup.spec, setup.heads, table, empty, setup.tracker, fns=setup.fns
    )
    refit.tag = "refit/"
    log.info("refit on all %d training rows", len(table))
    done = [train_seed(refit, workdir, i, max_epochs=r.best_epoch) for i, r in enumerate(selected)]
    carry_to_refit(setup.config, workdir, table)
    # the validation figures are the selection's: the refit has no validation rows
    done = [
        dataclasses.replace(d, best_val_loss=r.best_val_loss, val_crps=r.val_crps)
        for d, r in zip(done, selected, strict=True)
    ]
    artefact.write_summary(workdir, [dataclasses.asdict(r) for r in done])


def _setup(
    config: ml_collections.ConfigDict,
    spec: FeatureSpec,
    heads: dict[str, str],
    fit_table: Any,
    val_table: Any,
    tracker: Tracker,
    stream: Any = None,
    pad_rows: int = 0,
    fns: StepFns | None = None,
) -> Setup:
    """Data on the devices, optimiser and compiled functions of one training phase.

    ``pad_rows`` pads the fit rows with masked rows (never drawn) to that many, and ``fns``
    reuses the compiled functions of an earlier phase: folds and the refit whose padded
    shapes agree then share one compiled epoch (:meth:`StepFns.epoch_padded`).
    """
    mesh = tdata.make_mesh()
    fit = None
    if stream is None:
        # recent errors hidden on some rows: operational inputs often lack them
        fit_table = recent.mask(fit_table, spec.targets, seed=int(config.train.seed))
        fit = tdata.to_device(spec.transform(fit_table), tdata.replicated(mesh), pad_rows)
    val = validation_chunks(config, spec, val_table, mesh)
    cfg = config.train
    n = len(fit_table) if fit is not None else int(stream.n)
    batch_size = round_up(min(int(cfg.batch_size), n), mesh.size)
    steps = max(1, -(-n // batch_size)) if fit is not None else stream.bind(mesh, batch_size)
    tx, schedule = make_optimizer(cfg, steps)
    if fns is None:
        # Every seed network has the same structure: one set of compiled functions serves all.
        model = _model(config, spec, heads, int(cfg.seed))
        graphdef, _, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
        fns = StepFns(graphdef, rest, heads, tx, int(cfg.ensemble_members))
    setup = Setup(config, spec, heads, fit, val, mesh, tracker, batch_size, steps, fns, schedule)
    setup.stream, setup.rows = stream, n
    return setup


def _model(
    config: ml_collections.ConfigDict, spec: FeatureSpec, heads: dict[str, str], seed: int
) -> nnx.Module:
    dtype = DTYPES[str(config.train.compute_dtype)]
    return build_model(
        spec.n_features,
        spec.n_stations,
        heads,
        config.model,
        seed=seed,
        dtype=dtype,
        private=spec.own_features(),
    )


def _new_state() -> dict[str, Any]:
    return {"epoch": 0, "best": math.inf, "best_epoch": 0, "wait": 0, "history": []}


def train_seed(
    setup: Setup, workdir: Path, index: int, max_epochs: int | None = None
) -> SeedResult:
    """Train (or resume, or skip when finished) seed network ``index``.

    ``max_epochs`` stops after that many epochs of the ``train.epochs`` schedule (refit).
    """
    cfg = setup.config.train
    seed = int(cfg.seed) + index
    seed_dir = artefact.seed_dir(workdir, index)
    done = seed_dir / "DONE.json"
    if done.exists():
        log.info("seed %d already trained (%s)", seed, done)
        return SeedResult(**json.loads(done.read_text()))
    start = time.perf_counter()
    params = nnx.state(_model(setup.config, setup.spec, setup.heads, seed), nnx.Param)
    rep = tdata.replicated(setup.mesh)
    params = jax.device_put(params, rep)
    batch_size, steps, fns, schedule = setup.batch_size, setup.steps, setup.fns, setup.schedule
    opt_state = jax.device_put(fns.tx.init(params), rep)
    ckpt = SeedCheckpoints(seed_dir)
    state = _new_state()
    restored = ckpt.restore_latest(params, opt_state)
    if restored is not None:
        params, opt_state, state = restored
        log.info("seed %d: resuming after epoch %d", seed, state["epoch"])
    base, val_key = jax.random.split(jax.random.key(seed))
    idx_sharding = tdata.batch_sharded(setup.mesh, ndim=2, axis=1)
    last = int(cfg.epochs) if max_epochs is None else min(int(cfg.epochs), max_epochs)
    # Checkpoints (best, then latest) at most every ``checkpoint_every_s`` seconds and after
    # the last epoch: a killed run resumes from the last save and redoes (deterministically)
    # the epochs after it.
    every = float(cfg.get("checkpoint_every_s", 0.0))
    saved, best = time.perf_counter(), None
    what = f"{setup.tag}seed {seed}"
    # closing: an error mid-training still lets the pending (asynchronous) saves finish
    with (
        contextlib.closing(ckpt),
        progress.bar(what, last, completed=min(int(state["epoch"]), last)) as shown,
    ):
        while state["epoch"] < last and state["wait"] < int(cfg.patience):
            epoch = int(state["epoch"])
            key, t0 = jax.random.fold_in(base, epoch), time.perf_counter()
            if setup.fit is None:  # out of core: chunks read while the device trains
                params, opt_state, loss, per = setup.stream.epoch(fns, params, opt_state, key)
            else:  # padded to the longest epoch sharing the compiled function
                max_steps = max(steps, -(-setup.fit.n // batch_size))
                order = (seed % 2**32, epoch)  # the epoch's shuffle, drawn on the host
                idx = tdata.padded_indices(order, setup.rows, batch_size, max_steps, idx_sharding)
                params, opt_state, loss, per = fns.epoch_padded(
                    params, opt_state, setup.fit, idx, jax.random.fold_in(key, 1), steps
                )
            loss = float(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"seed {seed} epoch {epoch + 1}: training loss is {loss}; lower "
                    f"train.learning_rate or check the data for extreme values"
                )
            rate = steps * batch_size / (time.perf_counter() - t0)
            val_loss, val_crps = evaluate(fns, params, setup.val, val_key)
            if not setup.val:  # no validation data (a refit): NaN, and the latest epoch is best
                val_loss = math.nan
            lr = float(schedule(min((epoch + 1) * steps, int(cfg.epochs) * steps) - 1))
            record = epoch_record(epoch + 1, loss, per, val_loss, val_crps, lr, rate, setup.heads)
            improved = not setup.val or val_loss < state["best"]
            state["epoch"], state["history"] = epoch + 1, [*state["history"], record]
            if improved:
                state.update(best=val_loss, best_epoch=epoch + 1, wait=0)
                # a copy: the next epoch donates (reuses) the buffers of ``params``
                best = (epoch + 1, jax.tree.map(jnp.copy, params), val_loss)
            else:
                state["wait"] += 1
            finished = state["epoch"] >= last or state["wait"] >= int(cfg.patience)
            if finished or time.perf_counter() - saved >= every:
                if best is not None:  # best first: ``latest`` must never point past it
                    ckpt.save_best(best[0], best[1], {"epoch": best[0], "val_loss": best[2]})
                    best = None
                ckpt.save_latest(epoch + 1, params, opt_state, state)
                saved = time.perf_counter()
            line = format_epoch(record, int(cfg.epochs))
            log.info("%sseed %d %s%s", setup.tag, seed, line, " *" if improved else "")
            shown.advance(1, f"{what} | {epoch_summary(record)}")
            metrics = tracked_metrics(record, index, int(setup.config.train.n_seeds))
            setup.tracker.log_metrics(
                {setup.tag + k: v for k, v in metrics.items()}, step=epoch + 1
            )
    best = state["history"][int(state["best_epoch"]) - 1]
    result = SeedResult(
        seed,
        int(state["best_epoch"]),
        float(state["best"]),
        {k[9:]: v for k, v in best.items() if k.startswith("val_crps_")},
        int(state["epoch"]),
        time.perf_counter() - start,
    )
    write_json(done, dataclasses.asdict(result))
    write_json(seed_dir / "history.json", state["history"])
    return result
