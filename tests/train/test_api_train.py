"""``probcast.train_model`` from Python: a plain dict config, errors naming the argument, a
refused or failed training that leaves the model already in its workdir loadable, and a
root logger left to the program (Orbax's absl logging calls ``logging.basicConfig()``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import probcast
from probcast.configs import tiny
from probcast.model import integrity
from probcast.model.artefact import OtherRunError
from probcast.testing.stations import station_table
from probcast.train.check import ConfigError, DataError


def _config(path: Path):
    config = tiny.get_config()
    config.data.path = str(path)
    config.data.val_fraction = 0.25
    config.train.epochs = 1
    return config


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    station_table(n_stations=3, n_inits=12).to_parquet(folder / "table.parquet")
    station_table(n_stations=3, n_inits=12, seed=1).to_parquet(folder / "other.parquet")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory, data: Path) -> Path:
    workdir = tmp_path_factory.mktemp("runs") / "model"
    probcast.train_model(_config(data / "table.parquet").to_dict(), workdir)  # a plain dict
    return workdir


def test_a_plain_dict_config_trains_a_loadable_model(model: Path):
    loaded = probcast.load_model(model)
    assert set(loaded.heads) == {"t2m", "tp"}


def _refusals(data: Path) -> list[tuple[str, object, type[BaseException], str]]:
    typo, other, early, bad = (_config(data / "table.parquet") for _ in range(4))
    typo.data.path = str(data / "table_TYPO.parquet")
    other.data.path = str(data / "other.parquet")
    early.data.split_date = "2000-01-01"
    bad.data.targets = "t2m,msl"
    return [
        ("typo in data.path", typo, FileNotFoundError, "table_TYPO"),
        ("other data", other, OtherRunError, "holds a run with different"),
        ("split_date before the data", early, DataError, "data.split_date=2000-01-01"),
        ("missing target", bad, ValueError, "msl"),
    ]


def test_refused_or_failed_training_leaves_the_model_loadable(
    model: Path, data: Path, tmp_path: Path
):
    workdir = tmp_path / "served"
    shutil.copytree(model, workdir)
    for what, config, error, match in _refusals(data):
        with pytest.raises(error, match=match):
            probcast.train_model(config, workdir)
        assert (workdir / integrity.MARKER).is_file(), what
        integrity.verify(workdir)  # every checksum still holds
        probcast.load_model(workdir)


def test_train_model_names_the_argument_of_the_wrong_type(data: Path, tmp_path: Path):
    config = _config(data / "table.parquet")
    with pytest.raises(TypeError, match=r"config: expected an ml_collections\.ConfigDict"):
        probcast.train_model("tiny", tmp_path / "a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="workdir: expected a folder path"):
        probcast.train_model(config, 42)  # type: ignore[arg-type]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="afile: is a file; name a folder"):
        probcast.train_model(config, afile)
    config.data.split_date = "2000-01-01"
    with pytest.raises(DataError, match=r"data\.split_date=2000-01-01 leaves 0 rows"):
        probcast.train_model(config, tmp_path / "b")
    config.data.split_date = ""
    config.train.epochs = 0
    with pytest.raises(ConfigError):
        probcast.train_model(config.to_dict(), tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_loading_or_training_leaves_the_root_logger_alone(model: Path, data: Path, tmp_path):
    script = f"""
        import logging
        root = logging.getLogger()
        import probcast, probcast.model.checkpoint  # imports orbax
        assert root.handlers == [], ("import", root.handlers)
        probcast.load_model({str(model)!r})
        assert root.handlers == [], ("load_model", root.handlers)
        config = probcast.configs.tiny.get_config()
        config.data.path = {str(data / "table.parquet")!r}
        config.train.epochs = 1
        probcast.train_model(config, {str(tmp_path / "run")!r})
        assert root.handlers == [] and root.level == logging.WARNING, ("train", root.handlers)
        logging.basicConfig(level=logging.INFO, format="MYFMT %(name)s %(message)s")
        logging.getLogger("notebook").info("my line")
    """
    code = textwrap.dedent(script).replace("probcast.configs.tiny", "tiny")
    code = "from probcast.configs import tiny\n" + code
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MYFMT notebook my line" in done.stderr
