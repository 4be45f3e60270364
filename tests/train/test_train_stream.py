"""Out-of-core training: a partitioned Parquet dataset streamed in chunks (train.stream)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from probcast.configs import tiny
from probcast.features import FeatureSpec, usable_rows
from probcast.model import checkpoint
from probcast.split import validation_split
from probcast.testing.stations import station_table
from probcast.train import data as tdata
from probcast.train import loop, stream
from probcast.train.stream_chunks import FitStream
from probcast.train.stream_source import ParquetSource

CHUNK, SHUFFLE, READ = 128, 64, 40


def write_partitioned(table: pd.DataFrame, out, row_group: int = 30) -> None:
    """Write ``table`` as ``probcast data build`` does: one file per cycle, by init date."""
    for init, rows in table.groupby("init_time"):
        part = out / f"init_date={init:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(part / f"cycle_{init:%H%M}.parquet", index=False, row_group_size=row_group)
    table.to_parquet(out / "table.parquet", index=False)  # ignored next to the partitions


def _table(n_inits: int = 40, n_stations: int = 4) -> pd.DataFrame:
    leads = (6.0, 12.0, 24.0, 36.0)
    table = station_table(n_stations=n_stations, n_inits=n_inits, leads=leads)
    table.loc[::17, "fc_ws10"] = np.nan  # a predictor with missing values: an indicator
    return table


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    write_partitioned(_table(), out)
    return out


def _config(path, streamed: bool):
    config = tiny.get_config()
    config.data.path = str(path)
    config.data.val_fraction = 0.25
    config.train.stream = streamed
    config.train.stream_chunk_rows = CHUNK
    config.train.stream_shuffle_rows = SHUFFLE
    config.train.stream_read_rows = READ
    config.train.refit = False
    # streaming computes no recent errors (train.stream); the in-memory runs compared with
    # it must not either
    config.features.recent_error_hours = 0.0
    return config


def _in_memory(table):
    fit, val = validation_split(usable_rows(table, ["t2m", "tp"]), 0.25)
    return fit, val


def test_streamed_feature_spec_equals_the_in_memory_fit(dataset):
    config = _config(dataset, True)
    _, found = _scanned(dataset, config)
    fit, val = _in_memory(_table())
    expected = FeatureSpec.fit(fit, None, config.features)
    assert found.n_fit == len(fit) and len(found.val) == len(val)
    got = found.spec
    assert got.columns == expected.columns and got.indicators == expected.indicators == ["fc_ws10"]
    assert got.stations == expected.stations and got.doy == expected.doy
    np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-10)
    np.testing.assert_allclose(got.std, expected.std, rtol=1e-10)
    np.testing.assert_allclose(got.scale, expected.scale, rtol=1e-10)
    assert found.domain.rows == found.n_all and found.domain.lead_max == 36.0


def test_validation_rows_held_are_capped_by_a_uniform_sample(dataset):
    config = _config(dataset, True)
    _, val = _in_memory(_table())
    config.train.stream_val_max_rows = len(val) // 4
    _, found = _scanned(dataset, config)
    assert 0.5 * len(val) / 4 < len(found.val) < 1.5 * len(val) / 4
    keys = ["station", "init_time", "lead_time"]
    held = found.val[keys].merge(val[keys], on=keys, how="left", indicator=True)
    assert (held["_merge"] == "both").all()  # a subset of the validation rows
    assert found.val["init_time"].nunique() > 1  # spread over the period, not its start


def test_an_epoch_yields_every_fit_row_once_in_whole_batches(dataset):
    config = _config(dataset, True)
    source, found = _scanned(dataset, config)
    fit, _ = _in_memory(_table())
    fs = FitStream(source, found.spec, "fit", found.n_fit, config.train)
    steps = fs.bind(_mesh(), 64)
    assert fs.chunk_rows == 128 and steps == -(-len(fit) // 64)

    def order(seed):
        chunks = list(fs.chunks(np.random.default_rng(seed)))
        assert all(len(c) == CHUNK for c in chunks[:-1]) and 0 < len(chunks[-1]) <= CHUNK
        return np.concatenate([c.center[:, 0] for c in chunks])

    first = order(0)
    # every fit row exactly once (no double counting), in a shuffled, seed-determined order
    np.testing.assert_array_equal(np.sort(first), np.sort(fit["fc_t2m"].to_numpy("float32")))
    np.testing.assert_array_equal(first, order(0))
    assert not np.array_equal(first, order(1))


def _scanned(path, config):
    source = ParquetSource.open(path, "", "", 0.25, READ)
    return source, stream.scan(source, config)


def _mesh():
    return jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))


class SumStep:
    """A minimal jitted step in place of the network's (the host side is under test)."""

    def __init__(self):
        def epoch(p, o, data, idx, key, steps, per_epoch):
            run = (jnp.arange(idx.shape[0]) < steps)[:, None]  # padded steps never run
            return p + jnp.where(run, data.y[idx].sum(axis=-1), 0.0).sum(), o, p, data.y[0]

        self.epoch_padded = jax.jit(epoch)


def test_every_chunk_of_an_epoch_runs_on_one_compiled_function(dataset):
    config = _config(dataset, True)
    source, found = _scanned(dataset, config)
    fs = FitStream(source, found.spec, "fit", found.n_fit, config.train)
    mesh = _mesh()
    fs.bind(mesh, 64)
    assert found.n_fit > CHUNK and found.n_fit % CHUNK  # full chunks and a short last one
    step = SumStep()
    start = jax.device_put(jnp.float32(0.0), tdata.replicated(mesh))  # as training's params
    total, *_ = fs.epoch(step, start, None, jax.random.key(0))
    assert step.epoch_padded._cache_size() == 1  # the short chunk is padded, not recompiled
    fit, _ = _in_memory(_table())
    expected = np.nansum(fit[["obs_t2m", "obs_tp"]].to_numpy("float32"))
    assert float(total) == pytest.approx(float(expected), rel=1e-4)  # padded steps: no rows


def test_rows_held_at_once_are_bounded_whatever_the_table_size(tmp_path):
    bound = SHUFFLE + READ + 3 * CHUNK  # buffer + chunks on their way to the device
    peaks = []
    for n_inits, n_stations in ((20, 4), (50, 20)):
        out = tmp_path / str(n_inits)
        write_partitioned(_table(n_inits, n_stations), out, row_group=200)
        config = _config(out, True)
        source, found = _scanned(out, config)
        fs = FitStream(source, found.spec, "fit", found.n_fit, config.train)
        fs.bind(_mesh(), 64)
        total, *_ = fs.epoch(SumStep(), 0.0, None, jax.random.key(0))
        fit, _ = _in_memory(_table(n_inits, n_stations))
        expected = np.nansum(fit[["obs_t2m", "obs_tp"]].to_numpy("float32"))
        assert float(total) == pytest.approx(float(expected), rel=1e-4)  # each row once
        peaks.append((found.n_fit, fs.peak_rows))
    (small_n, small_peak), (big_n, big_peak) = peaks
    assert big_n > 4 * bound > small_n  # the big table is several times the bound
    assert 0 < small_peak <= bound and 0 < big_peak <= bound


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    runs = {}
    for streamed in (False, True):
        workdir = tmp_path_factory.mktemp(f"run_{streamed}")
        path = dataset if streamed else dataset / "table.parquet"
        runs[streamed] = (workdir, loop.train(_config(path, streamed), workdir))
    return runs


@pytest.mark.slow
def test_streamed_training_matches_in_memory_validation_crps(trained):
    (_, memory), (workdir, streamed) = trained[False], trained[True]
    meta = json.loads((workdir / "meta.json").read_text())
    assert meta["data_source"].startswith("stream:")
    for var, crps in memory[0].val_crps.items():
        assert streamed[0].val_crps[var] == pytest.approx(crps, rel=0.1), var
    assert (workdir / "calibration.json").exists()  # spread calibration on validation rows
    history = json.loads((workdir / "seed_0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


@pytest.mark.slow
def test_streamed_training_resumes_after_interruption(trained, dataset, tmp_path, monkeypatch):
    workdir, _ = trained[True]
    save = checkpoint.SeedCheckpoints.save_latest

    class Killed(Exception):
        pass

    def save_then_die(self, epoch, *args):
        save(self, epoch, *args)
        if epoch == 2:
            raise Killed

    monkeypatch.setattr(checkpoint.SeedCheckpoints, "save_latest", save_then_die)
    config = _config(dataset, True)
    config.train.checkpoint_every_s = 0.0
    with pytest.raises(Killed):
        loop.train(config, tmp_path)
    monkeypatch.undo()
    loop.train(_config(dataset, True), tmp_path)  # picks up after epoch 2
    history = json.loads((tmp_path / "seed_0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    ref = json.loads((workdir / "seed_0" / "history.json").read_text())
    # deterministic per seed and epoch: the resumed epoch 3 is the uninterrupted one
    assert history[2]["train_loss"] == pytest.approx(ref[2]["train_loss"], rel=1e-6)
    assert history[2]["val_loss"] == pytest.approx(ref[2]["val_loss"], rel=1e-6)


def test_stream_is_chosen_by_option_or_size(dataset):
    config = _config(dataset, False)
    assert not stream.wanted(config)
    config.train.stream_above_gib = 1e-6
    assert stream.wanted(config)
    config.data.path = "some-registry-dataset"
    assert not stream.wanted(config)
