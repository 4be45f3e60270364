"""``probcast train``: the config checked up front, clean errors, no half-written workdir."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ml_collections
import pytest

from probcast import cli as dispatcher
from probcast.configs import available, default, tiny
from probcast.features import FeatureSpec
from probcast.model.network import head_families
from probcast.testing.stations import station_table
from probcast.train import adapt, loop
from probcast.train.check import (
    COMPUTE_DTYPES,
    FLOAT_RANGE,
    INT_MIN,
    ConfigError,
    DataError,
    check_config,
    discard_on_failure,
    reading_data,
)
from probcast.train.cli import load_config, main


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checks") / "train.parquet"
    station_table(n_stations=2, n_inits=12, leads=(6.0, 12.0), targets=("t2m",)).to_parquet(path)
    return path


def _argv(table_path: Path, workdir: Path, *overrides: str) -> list[str]:
    return ["--config=tiny", f"--workdir={workdir}", f"--config.data.path={table_path}", *overrides]


def _config(**fields: object) -> ml_collections.ConfigDict:
    config = tiny.get_config()
    for key, value in fields.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


# --- finding 2-4: every statically checkable field, refused before anything is written


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("--config.model.activation=foo", "model.activation"),
        ("--config.model.noise_to=foo", "model.noise_to"),
        ("--config.model.recent_errors_to=foo", "model.recent_errors_to"),
        ("--config.train.compute_dtype=foo", "train.compute_dtype"),
        ("--config.features.day_of_year=foo", "features.day_of_year"),
        ("--config.tracking.backend=foo", "tracking.backend"),
        ("--config.features.missing=foo", "features.missing"),
        ("--config.features.neighbourhood=abc", "features.neighbourhood"),
        ("--config.model.dropout=1.5", "model.dropout"),
        ("--config.train.cv_folds=-2", "train.cv_folds"),
        ("--config.train.batch_size=0", "train.batch_size"),
        ("--config.model.hidden=0", "model.hidden"),
        ("--config.train.learning_rate=nan", "train.learning_rate"),
        ("--config.train.learning_rate=inf", "train.learning_rate"),
        ("--config.train.epochs=0", "train.epochs"),
        ("--config.train.epochs=-1", "train.epochs"),
        ("--config.train.patience=-1", "train.patience"),
        ("--config.train.n_seeds=0", "train.n_seeds"),
        ("--config.train.seed=-1", "train.seed"),
        ("--config.data.val_fraction=1.5", "data.val_fraction"),
        ("--config.data.split_date=notadate", "data.split_date"),
        ("--config.model.distributions=tmax:foo", "model.distributions"),
        ("--config.model.n_layers=0", "model.n_layers"),
        ("--config.train.grad_clip=0", "train.grad_clip"),
        ("--config.train.end_lr_factor=2", "train.end_lr_factor"),
    ],
)
def test_bad_field_is_refused_up_front(table_path, tmp_path, capsys, override, key):
    workdir = tmp_path / "run"
    assert main(_argv(table_path, workdir, override)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"probcast train: error: {key}=") and "expected" in err
    assert len(err.strip().splitlines()) == 1
    assert str(table_path) not in err  # a config mistake, not blamed on the data file
    assert not workdir.exists()


def test_distribution_of_a_non_target_is_refused(table_path, tmp_path, capsys):
    # named targets: refused before reading; "" (every obs_ column): once the table is read
    args = ["--config.model.distributions=foo:normal"]
    assert main(_argv(table_path, tmp_path / "a", *args, "--config.data.targets=t2m")) == 2
    assert "model.distributions='foo:normal'" in capsys.readouterr().err
    assert main(_argv(table_path, tmp_path / "b", *args)) == 1
    assert "non-targets ['foo']" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match=r"non-targets"):
        head_families(
            ["t2m"], ml_collections.ConfigDict({"generative": "", "distributions": "x:normal"})
        )


def test_head_options_are_consistent():
    with pytest.raises(ConfigError, match=r"model.distributions.*generative"):
        check_config(_config(model__generative="all", model__distributions="t2m:normal"))
    with pytest.raises(ConfigError, match=r"model.noise_to"):
        check_config(_config(model__noise_to="trunk"))
    with pytest.raises(ConfigError, match=r"model.noise_dim"):
        check_config(_config(model__generative="tp", model__noise_dim=0))
    with pytest.raises(ConfigError, match=r"model.generative"):
        check_config(_config(data__targets="t2m", model__generative="tp"))
    check_config(_config(model__noise_to="trunk", model__generative="all"))


def test_every_default_field_is_checked():
    for section, fields in default.get_config().items():
        for name, value in fields.items():
            key = f"{section}.{name}"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert key in INT_MIN or key in FLOAT_RANGE, key
    assert set(loop.DTYPES) == set(COMPUTE_DTYPES)
    for name in available():  # every bundled config passes
        check_config(load_config(name))


def test_config_file_fields_are_checked():
    config = tiny.get_config()
    config.train.epoch = 5  # a typo in a config file
    with pytest.raises(ConfigError, match=r"unknown field train.epoch; did you mean train.epochs"):
        check_config(config)
    fields = tiny.get_config().to_dict()
    fields["train"]["epochs"] = "5"
    config = ml_collections.ConfigDict(fields)
    with pytest.raises(ConfigError, match=r"train.epochs='5': expected an integer"):
        check_config(config)
    config = tiny.get_config()
    del config["model"]
    with pytest.raises(ConfigError, match=r"no section 'model'"):
        check_config(config)


def test_library_refuses_meaningless_options():
    table = station_table(n_stations=2, n_inits=4, targets=("t2m",))
    with pytest.raises(ValueError, match=r"features.missing"):
        FeatureSpec.fit(table, "t2m", {"missing": "foo"})
    with pytest.raises(ValueError, match=r"train.cv_folds"):
        adapt.cv_folds(_config(train__cv_folds=-2), table)
    with pytest.raises(ConfigError, match=r"train.epochs"):
        loop.train(_config(train__epochs=0), "unused")


# --- finding 3: config files


def test_config_argument_and_return_value(table_path, tmp_path, capsys):
    assert main(["--config=tiny:foo", f"--workdir={tmp_path / 'w'}"]) == 2
    assert "get_config() takes no argument" in capsys.readouterr().err
    returns_int = tmp_path / "returns_int.py"
    returns_int.write_text("def get_config():\n    return 5\n")
    raises = tmp_path / "raises.py"
    raises.write_text("def get_config():\n    raise RuntimeError('boom')\n")
    for path, words in ((returns_int, "returned type int"), (raises, "RuntimeError: boom")):
        argv = [f"--config={path}", f"--workdir={tmp_path / 'w'}"]
        assert main(argv) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


# --- finding 4 and 5: argument forms


def test_space_forms_and_stray_arguments(table_path, tmp_path, capsys):
    argv = ["--config", "tiny", f"--workdir={tmp_path / 'w'}", "--config.train.epoch", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown config field 'train.epoch'" in err and "train.epochs" in err
    assert "\\" not in err and '"' not in err
    argv = _argv(table_path, tmp_path / "w", "stray_positional", "--config.train.epochs=2")
    assert main(argv) == 2
    assert "unexpected argument 'stray_positional'" in capsys.readouterr().err
    assert main(_argv(table_path, tmp_path / "w", "--config.train.refit", "false")) == 2
    assert "unexpected argument 'false'" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_space_form_config_trains_without_validation(table_path, tmp_path, capsys):
    workdir = tmp_path / "w"
    argv = ["--config", "tiny", "--workdir", str(workdir), f"--config.data.path={table_path}"]
    argv += ["--config.train.epochs=1", "--config.data.val_fraction=0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "seed 0: 1 epochs, no validation rows (data.val_fraction=0)" in out
    assert "val crps ," not in out
    assert (workdir / "COMPLETE.json").exists()


# --- finding 1: a failed run leaves no workdir behind


def _fail_in_seed(monkeypatch, index: int, error: BaseException) -> None:
    real = loop.train_seed

    def train_seed(setup, workdir, i, max_epochs=None):
        if i == index:
            raise error
        return real(setup, workdir, i, max_epochs)

    monkeypatch.setattr(loop, "train_seed", train_seed)


def test_failed_run_removes_its_workdir_and_rerun_trains(table_path, tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "new" / "run"  # parents made for it go too
    _fail_in_seed(monkeypatch, 0, ValueError("late failure"))
    assert main(_argv(table_path, workdir, "--config.train.epochs=1")) == 1
    assert "late failure" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    assert main(_argv(table_path, workdir, "--config.train.epochs=1")) == 0


def test_unexpected_failure_also_cleans_up(table_path, tmp_path, monkeypatch, capsys):
    workdir = tmp_path / "run"
    _fail_in_seed(monkeypatch, 0, FloatingPointError("seed 0 epoch 1: training loss is nan"))
    assert dispatcher.main(["train", *_argv(table_path, workdir, "--config.train.epochs=1")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "probcast train: error: seed 0 epoch 1: training loss is nan"
    assert not workdir.exists()


def test_unknown_dataset_leaves_nothing(tmp_path, capsys):
    workdir = tmp_path / "run"
    argv = ["--config=tiny", f"--workdir={workdir}", "--config.data.path=nosuch-dataset"]
    assert main(argv) == 1
    assert "unknown dataset 'nosuch-dataset'" in capsys.readouterr().err
    assert not workdir.exists()


def test_failure_keeps_a_workdir_the_user_had(table_path, tmp_path, monkeypatch):
    workdir = tmp_path / "mine"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    _fail_in_seed(monkeypatch, 0, ValueError("late failure"))
    assert main(_argv(table_path, workdir, "--config.train.epochs=1")) == 1
    assert (workdir / "notes.txt").read_text() == "mine"


def test_failure_keeps_a_run_with_finished_seeds(table_path, tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    _fail_in_seed(monkeypatch, 1, ValueError("late failure"))
    argv = _argv(table_path, workdir, "--config.train.epochs=1", "--config.train.n_seeds=2")
    assert main(argv) == 1
    done = workdir / "selection" / "seed_0" / "DONE.json"
    assert json.loads(done.read_text())["seed"] == 0  # resumable: kept


def test_discard_on_failure_only_removes_what_it_made(tmp_path):
    made = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt), discard_on_failure(made):
        made.mkdir(parents=True)
        (made / "config.json").write_text("{}")
        raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError), discard_on_failure(made):
        made.mkdir(parents=True)
        (made / ".lock").write_text("1\n")  # another process's lock
        raise ValueError
    assert made.exists()


# --- finding 4: only errors of reading the data name the data file


def test_reading_errors_name_the_data_file(table_path, tmp_path):
    with (
        pytest.raises(DataError, match=f"^{re.escape(str(table_path))}: bad row"),
        reading_data(table_path),
    ):
        raise ValueError("bad row")
    with pytest.raises(ValueError, match=r"^train.parquet is broken$"), reading_data(table_path):
        raise ValueError("train.parquet is broken")  # named already
    with pytest.raises(KeyError), reading_data("some-dataset"):  # not a file: unchanged
        raise KeyError("x")


# --- finding 7: probcast demo's overrides


def test_demo_override_message_is_trains():
    from probcast.bench.demo import config_for

    with pytest.raises(ValueError) as info:
        config_for("verif-norway-precip", ["--config.train.epoch=2"])
    msg = str(info.value)
    assert "unknown config field 'train.epoch'" in msg and "did you mean train.epochs" in msg
    assert "\\" not in msg and '"' not in msg and "\n" not in msg
    with pytest.raises(ValueError, match=r"train.epochs=0: expected an integer >= 1"):
        config_for("verif-norway-precip", ["--config.train.epochs=0"])


def test_a_build_folder_is_trained_on_when_streamed(tmp_path, capsys):
    """docs/model.md: data.path may be a `probcast data build` output with train.stream."""
    table = station_table(n_stations=3, n_inits=24, targets=("t2m",), seed=1)
    out = tmp_path / "build"
    for init, rows in table.groupby("init_time"):
        part = out / f"init_date={init:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(part / f"cycle_{init:%H%M}.parquet", index=False)
    base = ["--config=tiny", f"--config.data.path={out}", "--config.train.epochs=1"]
    assert main([*base, f"--workdir={tmp_path / 'w1'}"]) == 1
    assert "folder of Parquet partitions" in capsys.readouterr().err
    assert not (tmp_path / "w1").exists()
    assert main([*base, f"--workdir={tmp_path / 'w2'}", "--config.train.stream=True"]) == 0
    assert (tmp_path / "w2" / "COMPLETE.json").exists()
