"""``probcast verify`` refuses bad arguments (exit 2, one line naming the option) before work."""

from __future__ import annotations

import json

import pytest

from probcast.testing import verification as syn
from probcast.verify import cli


@pytest.fixture
def files(tmp_path):
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=8)
    truth_path = tmp_path / "truth.csv"
    truth.to_csv(truth_path, index=False)
    ens = tmp_path / "ens.parquet"
    syn.members_table(truth, mu, sigma, n_members=4).to_parquet(ens)
    emos = tmp_path / "emos.parquet"
    syn.normal_params_table(truth, mu, sigma).to_parquet(emos)
    (tmp_path / "emos.json").write_text(json.dumps({"families": {"t2m": "normal"}}))
    return truth_path, ens, emos, tmp_path


def _run(capsys, truth, *args):
    rc = cli.main([f"--truth={truth}", *args])
    return rc, capsys.readouterr().err


def test_a_repeated_forecast_name_is_refused(files, capsys):
    truth, ens, emos, tmp = files
    out = tmp / "out"
    rc, err = _run(capsys, truth, f"--forecast=m={ens}", f"--forecast=m={emos}", f"--out={out}")
    assert rc == 2 and "'m' is already given to" in err and str(ens) in err
    assert err.count("\n") == 1 and not out.exists()


def test_name_defaults_to_the_stem(files, capsys):
    truth, ens, emos, tmp = files
    out = tmp / "out"
    rc, _ = _run(capsys, truth, f"--forecast={ens}", f"--forecast={emos}", f"--out={out}",
                 "--reference=ens", "--n-boot=20")  # fmt: skip
    assert rc == 0
    meta = json.loads((out / "scores.json").read_text())["meta"]
    assert meta["forecasts"] == {"ens": str(ens), "emos": str(emos)}
    rc, err = _run(capsys, truth, f"--forecast={ens}", f"--forecast=x/{ens.name}", f"--out={out}")
    assert rc == 2 and "'ens' is already given" in err  # same stem twice: name them
    rc, err = _run(capsys, truth, "--forecast=a=", f"--out={out}")
    assert rc == 2 and "expected [NAME=]FILE" in err


@pytest.mark.parametrize(
    ("family", "words"),
    [("modl:t2m=normal", ["no forecast is named 'modl'", "emos"]),
     ("emos:t2m=gamma", ["unknown distribution 'gamma'", "censored_logistic"]),
     ("t2m=gamma", ["unknown distribution 'gamma'"])],
)  # fmt: skip
def test_family_names_a_forecast_and_a_known_family(files, capsys, family, words):
    truth, _, emos, tmp = files
    rc, err = _run(capsys, truth, f"--forecast=emos={emos}", f"--family={family}",
                   f"--out={tmp / 'out'}")  # fmt: skip
    assert rc == 2 and all(w in err for w in words) and f"--family {family}" in err


def test_n_boot(files, capsys):
    truth, ens, _, tmp = files
    fc = [f"--forecast=raw={truth}", f"--forecast=ens={ens}"]
    rc, err = _run(capsys, truth, *fc, "--n-boot=-5", f"--out={tmp / 'a'}")
    assert rc == 2 and "--n-boot -5: expected an integer >= 0" in err
    rc, err = _run(capsys, truth, *fc, "--n-boot=0", "--reference=raw", f"--out={tmp / 'b'}")
    assert rc == 2 and "--n-boot 0" in err and not (tmp / "b").exists()
    rc, _ = _run(capsys, truth, *fc, "--n-boot=0", f"--out={tmp / 'c'}")  # no CRPSS: no bootstrap
    assert rc == 0


def test_unknown_reference_is_a_usage_error(files, capsys):
    truth, ens, _, tmp = files
    rc, err = _run(capsys, truth, f"--forecast=e={ens}", "--reference=x", f"--out={tmp / 'o'}")
    assert rc == 2 and "--reference 'x'" in err and not (tmp / "o").exists()


def test_out_paths(files, capsys):
    truth, ens, _, tmp = files
    (tmp / "afile").write_text("x")
    rc, err = _run(capsys, truth, f"--forecast=e={ens}", f"--out={tmp / 'afile'}")
    assert rc == 2 and "exists and is not a directory" in err and "Errno" not in err
    rc, err = _run(capsys, truth, f"--forecast=e={ens}", f"--out={tmp / 'afile' / 'sub'}")
    assert rc == 2 and "cannot create the folder" in err and "Errno" not in err
    out = tmp / "never"
    rc, err = _run(capsys, truth, f"--forecast=e={tmp / 'missing.parquet'}", f"--out={out}")
    assert rc == 1 and "missing.parquet" in err and "Errno" not in err
    assert not out.exists()  # a failed run leaves no empty folder
