"""Training curves in the verification report: ``probcast verify --model WORKDIR``."""

from __future__ import annotations

import base64
import json
import re

import pytest

from probcast.testing import verification as syn
from probcast.verify import cli, curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _history(targets, epochs, *, val=True, offset=0.0):
    out = []
    for e in range(1, epochs + 1):
        rec = {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e}
        rec.update({f"train_crps_{v}": 1.0 / e + offset for v in targets})
        if val:
            rec.update({f"val_crps_{v}": 1.2 / e + offset for v in targets})
        rec.update(lr=1e-3, samples_per_s=1e4)
        out.append(rec)
    return out


def _model(root, targets=("t2m", "tp"), refit=True):
    for seed in (0, 1):
        sel = root / "selection" if refit else root
        (sel / f"seed_{seed}").mkdir(parents=True)
        (sel / f"seed_{seed}" / "history.json").write_text(
            json.dumps(_history(targets, 6, offset=0.1 * seed))
        )
        if refit:
            (root / f"seed_{seed}").mkdir()
            (root / f"seed_{seed}" / "history.json").write_text(
                json.dumps(_history(targets, 4, val=False))
            )
    return root


def test_histories_of_a_refitted_model(tmp_path):
    runs = curves.read_histories(_model(tmp_path))
    assert set(runs) == {"selection", "refit"}
    assert set(runs["selection"]) == {"seed 0", "seed 1"}
    assert len(runs["selection"]["seed 1"]) == 6 and len(runs["refit"]["seed 0"]) == 4


def test_histories_without_refit_are_the_selection_run(tmp_path):
    runs = curves.read_histories(_model(tmp_path, refit=False))
    assert list(runs) == ["selection"] and len(runs["selection"]["seed 0"]) == 6


def test_curves_one_panel_per_target_at_least_400_px(tmp_path):
    one = curves.training_curves(curves.read_histories(_model(tmp_path / "a", ("t2m",))))
    four = curves.training_curves(
        curves.read_histories(_model(tmp_path / "b", ("t2m", "tp", "u10", "v10")))
    )
    assert one is not None and four is not None
    w1, h1 = _png_size(one)
    w4, h4 = _png_size(four)
    assert 400 <= w1 <= 1400 and 400 <= w4 <= 1400
    assert w4 > w1 and h4 > h1  # 3 columns, 2 rows: a grid, not one long row
    assert curves.training_curves({"selection": {"seed 0": [{"epoch": 1}]}}) is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing", "not a directory"),
        (lambda p: p, "no seed_\\*/history.json"),
        (lambda p: _bad_json(p), "seed_0/history.json: cannot read"),
        (lambda p: _bad_json(p, "{}"), "expected a JSON list"),
    ],
)
def test_bad_model_directory_is_one_clear_error(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(ValueError, match=message):
        curves.read_histories(path)


def _bad_json(root, text="[{"):
    (root / "seed_0").mkdir()
    (root / "seed_0" / "history.json").write_text(text)
    return root


@pytest.fixture
def tables(tmp_path):
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=8)
    truth.to_parquet(tmp_path / "truth.parquet")
    syn.members_table(truth, mu, sigma, n_members=8).to_parquet(tmp_path / "ens.parquet")
    return tmp_path


def _argv(d, *extra):
    return [
        f"--truth={d / 'truth.parquet'}",
        f"--forecast=ens={d / 'ens.parquet'}",
        f"--out={d / 'out'}",
        "--n-boot=10",
        *extra,
    ]


def test_verify_with_model_adds_the_training_section(tables, capsys):
    model = _model(tables / "run")
    assert cli.main(_argv(tables, f"--model={model}")) == 0
    text = (tables / "out" / "report.html").read_text()
    assert "<h2>Training</h2>" in text and "dotted: retraining" in text
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    alts = re.findall(r'<img alt="([^"]+)"', text)
    assert "training curves: CRPS per epoch" in alts
    png = base64.b64decode(uris[alts.index("training curves: CRPS per epoch")])
    assert _png_size(png)[0] >= 400
    # without --model: no training section
    assert cli.main(_argv(tables)) == 0
    assert "Training" not in (tables / "out" / "report.html").read_text()


def test_verify_with_a_bad_model_fails_before_scoring(tables, capsys):
    code = cli.main(_argv(tables, f"--model={tables / 'nope'}"))
    assert code == 1
    err = capsys.readouterr().err
    assert f"--model {tables / 'nope'}: not a directory" in err and "Traceback" not in err
    assert not (tables / "out").exists()
