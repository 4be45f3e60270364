"""The model registry: versions, aliases, promote/rollback, cycles on the champion, NWP upgrades."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
from opshelp import cycles_of
from registryhelp import registry_db, write_registry_pipeline

from probcast.cli import main
from probcast.ops import lineage
from probcast.ops import pipeline as pl
from probcast.ops.cycle import open_store, run_cycle
from probcast.ops.registry import DIGEST_TAG, Registry, RegistryError
from probcast.ops.upgrade import changes_between, check_input, input_signature, keys_of


def test_pipeline_accepts_a_registered_model_and_checks_the_blocks(tmp_path):
    pipe = pl.load(write_registry_pipeline(tmp_path, nwp={"keys": ["mars_expver"]}))
    assert pipe.registry is not None and pipe.registry.name == "stations"
    assert pipe.registry.uri == f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert pipe.model == tmp_path / "models" / "stations@champion"
    assert keys_of(pipe.nwp)[-1] == "mars_expver"
    assert keys_of({"check": False}) == ()
    assert pl.load(write_registry_pipeline(tmp_path, model="runs/x")).registry is None
    for change, message in [
        ({"model": {"registry": "a/b"}}, "model.registry must be a model name"),
        ({"model": {"registry": "m", "version": 3}}, "model: unknown keys"),
        ({"nwp": {"keys": "centre"}}, "nwp.keys must be a list"),
        ({"nwp": {"colour": 1}}, "nwp: unknown keys"),
        ({"retrain": {"table": "t.parquet"}}, "retrain.config is required"),
        ({"retrain": {"config": "tiny", "table": "t", "margin": 2}}, r"retrain.margin .* \[0.0"),
        ({"retrain": {"config": "tiny", "table": "t", "rule": "most"}}, "retrain.rule"),
        ({"retrain": {"config": "tiny", "table": "t", "epochs": 3}}, "retrain: unknown keys"),
    ]:
        with pytest.raises(pl.PipelineError, match=message):
            pl.load(write_registry_pipeline(tmp_path, **change))


def test_register_promote_rollback_and_digest_check(tmp_path, tmp_path_factory, model_dir):
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        os.environ.pop(name, None)
    registry_db(tmp_path_factory, tmp_path)
    pipe = pl.load(write_registry_pipeline(tmp_path))
    registry = Registry(pipe.registry)
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"  # no usage telemetry
    v1 = registry.register(model_dir)
    v2 = registry.register(model_dir, {"note": "same content again"})
    assert (v1, v2) == ("1", "2")
    versions = registry.versions()
    assert versions[0]["source"] == versions[1]["source"]  # content-addressed copy, reused
    copy = tmp_path / "models" / "stations" / os.path.basename(versions[0]["source"])
    assert copy.is_dir() and (copy / "COMPLETE.json").exists()
    assert not os.stat(copy / "config.json").st_mode & stat.S_IWUSR  # read-only
    assert len(versions[0]["tags"][DIGEST_TAG]) == 64
    assert registry.aliases() == {"challenger": "2"}

    assert registry.promote("1") == "1"
    assert registry.promote("2", reason="test") == "2"
    assert registry.aliases() == {"champion": "2", "challenger": "2"}
    assert os.readlink(tmp_path / "models" / "stations@champion") == str(copy)
    assert registry.resolve().version == "2"
    assert registry.rollback("bad") == ("2", "1")
    assert registry.resolve("champion").version == "1"
    assert registry.version_tags("2")["probcast.rolled_back_to"] == "1"
    assert registry.version_tags("2")["probcast.rollback_reason"] == "bad"
    with pytest.raises(RegistryError, match="first champion"):
        registry.rollback()
    with pytest.raises(RegistryError, match="no version '9'"):
        registry.promote("9")
    with pytest.raises(RegistryError, match="not the work directory of a trained model"):
        registry.register(tmp_path)  # not a model workdir
    # a version whose files changed after registration is refused
    marker = copy / "COMPLETE.json"
    marker.chmod(0o644)
    marker.write_text(marker.read_text() + "\n")
    with pytest.raises(RegistryError, match="differs from the registered"):
        registry.resolve()


def test_model_cli(tmp_path, tmp_path_factory, model_dir, capsys):
    registry_db(tmp_path_factory, tmp_path)
    path = str(write_registry_pipeline(tmp_path))
    assert main(["model", "rollback", "--pipeline", path]) == 1
    assert "no champion" in capsys.readouterr().err
    assert main(["model", "register", str(model_dir), "--pipeline", path, "--promote"]) == 0
    assert "version 1 is the champion" in capsys.readouterr().out
    assert main(["model", "register", str(model_dir), "--pipeline", path]) == 0
    assert main(["model", "promote", "2", "--pipeline", path, "--reason", "by hand"]) == 0
    assert main(["model", "rollback", "--pipeline", path]) == 0
    assert "from version 2 to 1" in capsys.readouterr().out
    assert main(["model", "list", "--pipeline", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["aliases"] == {"champion": "1", "challenger": "2"}
    assert doc["champion_history"] == ["1"]
    assert doc["versions"][1]["tags"]["probcast.promoted_reason"] == "by hand"
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert main(["model", "list", "--name", "stations", "--uri", uri]) == 0
    assert "champion" in capsys.readouterr().out
    assert main(["model", "list"]) == 2
    assert main(["model", "promote", "7", "--pipeline", path]) == 1


def test_model_cli_refuses_a_registry_file_that_is_not_there(tmp_path, monkeypatch, capsys):
    """From another folder, ``--name`` alone once created an empty mlruns.db and said
    "no version registered" with exit status 0."""
    monkeypatch.chdir(tmp_path)
    for args in (["list"], ["promote", "1"], ["rollback"]):
        assert main(["model", *args, "--name", "stations"]) == 1
        err = capsys.readouterr().err
        assert f"no registry at {tmp_path / 'mlruns.db'}" in err and "--uri" in err
    (tmp_path / "elsewhere").mkdir()
    path = str(write_registry_pipeline(tmp_path / "elsewhere"))
    assert main(["model", "list", "--pipeline", path]) == 1
    assert f"{path}: model.uri: no registry at" in capsys.readouterr().err
    assert not (tmp_path / "mlruns.db").exists()
    assert not (tmp_path / "elsewhere" / "mlruns.db").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "uri",
    ["postgresql+psycopg://probcast@127.0.0.1:{port}/db", "http://127.0.0.1:{port}"],
    ids=["database", "server"],
)
def test_model_cli_names_an_unreachable_registry(tmp_path, monkeypatch, capsys, uri):
    """No minutes of MLflow retries, no "unexpected error ... please report it"."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    uri = uri.format(port=_free_port())
    path = str(write_registry_pipeline(tmp_path, model={"registry": "stations", "uri": uri}))
    start = time.monotonic()
    for action in (["list"], ["rollback"]):
        assert main(["model", *action, "--pipeline", path]) == 1
        err = capsys.readouterr().err
        assert f"{path}: model.uri: cannot reach the registry" in err, err
        assert "unexpected" not in err
    assert time.monotonic() - start < 30
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # bounded unless set


def test_model_cli_reports_a_failing_registry_database(tmp_path, capsys):
    """A file that is not an MLflow database: an error naming the option, exit status 1."""
    (tmp_path / "mlruns.db").write_text("not a database")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert main(["model", "list", "--name", "stations", "--uri", uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("probcast model: error: --uri: the registry sqlite:///") and (
        "unexpected" not in err
    )


def _drop(stations: pd.DataFrame, folder, init, model_version: str):
    """One cycle's input with the NWP model version in the Parquet key/value metadata."""
    rows = stations[stations.init_time == init].drop(columns=["obs_t2m", "obs_tp"])
    table = pa.Table.from_pandas(rows, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"model_version": model_version.encode()}
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), folder / f"{init:%Y%m%d%H}.parquet")


def test_cycles_run_the_champion_and_record_version_and_upgrades(
    tmp_path, tmp_path_factory, model_dir, stations, caplog
):
    registry_db(tmp_path_factory, tmp_path)
    pipe = pl.load(write_registry_pipeline(tmp_path))
    store = open_store(pipe)
    inits = cycles_of(stations)[:4]
    for init, nwp in zip(inits, ["47r3", "47r3", "48r1", "48r1"], strict=True):
        _drop(stations, tmp_path / "inputs", init, nwp)
    cycles = [pd.Timestamp(i).to_pydatetime() for i in inits]
    failed = run_cycle(pipe, cycles[0], store)  # nothing registered yet
    assert failed.status == "failed" and "no version with alias 'champion'" in failed.error
    registry = Registry(pipe.registry)
    registry.promote(registry.register(model_dir))
    registry.register(model_dir)
    used = []
    for cycle, action in zip(cycles, [None, "promote", None, "rollback"], strict=True):
        if action == "promote":
            registry.promote("2")
        elif action == "rollback":
            registry.rollback()
        with caplog.at_level(logging.WARNING, logger="probcast.ops.upgrade"):
            outcome = run_cycle(pipe, cycle, store)
        assert outcome.status == "finished", outcome.error
        used.append(lineage.model_of(store, pl.cycle_id(cycle))["version"])
    assert used == ["1", "2", "2", "1"]
    manifest = json.loads((pipe.work_dir(cycles[1]) / "manifest.json").read_text())
    assert manifest["model"] == registry.versions()[1]["source"]
    upgrades = lineage.upgrades(store)
    assert [u["cycle"] for u in upgrades] == [pl.cycle_id(cycles[2])]
    assert upgrades[0]["changes"] == {"model_version": [["47r3"], ["48r1"]]}
    assert "NWP input upgrade" in caplog.text and "47r3" in caplog.text
    assert main(["model", "upgrades", "--pipeline", str(tmp_path / "ops.yaml")]) == 0
    store.close()


def test_a_cycle_fails_fast_on_an_unreachable_registry(tmp_path, monkeypatch, stations):
    """A cycle tries the registry once: seconds, not MLflow's minutes of retries."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    uri = f"http://127.0.0.1:{_free_port()}"
    pipe = pl.load(write_registry_pipeline(tmp_path, model={"registry": "stations", "uri": uri}))
    store = open_store(pipe)
    init = cycles_of(stations)[0]
    _drop(stations, tmp_path / "inputs", init, "47r3")
    start = time.monotonic()
    outcome = run_cycle(pipe, pd.Timestamp(init).to_pydatetime(), store)
    assert time.monotonic() - start < 30
    assert outcome.status == "failed"
    assert f"ops: model.uri: cannot reach the registry {uri}" in outcome.error, outcome.error
    assert store.cycle_status(pl.cycle_id(pd.Timestamp(init).to_pydatetime())) == "failed"
    store.close()


def test_input_signature_of_each_format(tmp_path):
    import eccodes

    handle = eccodes.codes_grib_new_from_samples("GRIB2")
    eccodes.codes_set(handle, "centre", "ecmf")
    eccodes.codes_set(handle, "generatingProcessIdentifier", 151)
    with open(tmp_path / "a.grib2", "wb") as fh:
        eccodes.codes_write(handle, fh)
    eccodes.codes_release(handle)
    grib = input_signature(tmp_path / "a.grib2")
    assert grib == {"centre": ["ecmf"], "edition": ["2"], "generatingProcessIdentifier": ["151"]}

    data = xr.Dataset({"fc_t2m": (("y", "x"), np.zeros((2, 2)), {"GRIB_centre": "ecmf"})})
    data.attrs["model_version"] = "cy48r1"
    data.to_netcdf(tmp_path / "g.nc")
    assert input_signature(tmp_path / "g.nc") == {"centre": ["ecmf"], "model_version": ["cy48r1"]}
    pd.DataFrame({"station": ["a", "b"], "model_version": ["v2", "v2"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    assert input_signature(tmp_path / "t.csv") == {"model_version": ["v2"]}
    assert changes_between({"centre": ["ecmf"]}, {"centre": ["ecmf"]}) == {}
    assert changes_between({}, {"edition": ["2"]}) == {"edition": [None, ["2"]]}


def test_unreadable_input_metadata_does_not_fail(tmp_path, caplog):
    grid = {"input": "inputs/{cycle:%Y%m%d%H}.nc", "products": {"output": "pred.nc"}}
    pipe = pl.load(write_registry_pipeline(tmp_path, **grid))
    (tmp_path / "inputs").mkdir()
    cycle = pl.parse_cycle("2021-01-11T00Z")
    pipe.input_path(cycle).write_bytes(b"not a grid")
    store = open_store(pipe)
    with caplog.at_level(logging.WARNING):
        assert check_input(pipe, cycle, store) == {}
    assert "input metadata not checked" in caplog.text
    store.close()


@pytest.mark.realdata
def test_a_change_of_nwp_model_in_real_grib_files_is_detected(mirror, tmp_path):
    arpege = input_signature(mirror / "arpege-grib" / "arpege_2m_NW_20180501000000.grib")
    hres = input_signature(mirror / "ecmwf-hres-grib1" / "an_10u_sfc.grib")
    assert arpege["centre"] == ["lfpw"] and hres["centre"] == ["ecmf"]
    changes = changes_between(arpege, hres)
    assert set(changes) == {"centre", "generatingProcessIdentifier"}
    assert changes["generatingProcessIdentifier"] == [["211"], ["146"]]
