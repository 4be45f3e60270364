"""The accumulation window a GRIB file states is recorded as the dataset's period.

cfgrib keeps the end step only: the HRRR sample's tp over 0-12 h (of 0-12 h and 11-12 h)
was read with no period, and a model of 1-h amounts predicted from it claiming PT1H.
"""

from __future__ import annotations

import json
from pathlib import Path

import eccodes
import numpy as np
import pytest

from probcast import periods
from probcast.cli import main
from probcast.ingest.gridded import check_grib, open_gridded, write_dataset
from probcast.testing.grids import forecast_grid

HRRR = "nwp-index-samples/subset_20201214_hrrr.t00z.wrfsfcf12.grib2"
ARPEGE = "arpege-grib/arpege_PRECIP_NW_20180501000000.grib"


def _write(path: Path, fields: list[tuple[str, int, int, float]]) -> Path:
    """ECMWF GRIB2 messages ``(shortName, start h, end h, value)``, one run, in this order."""
    with open(path, "wb") as f:
        for short, start, end, value in fields:
            h = eccodes.codes_grib_new_from_samples("GRIB2")
            eccodes.codes_set(h, "productDefinitionTemplateNumber", 8)
            eccodes.codes_set_string(h, "shortName", short)
            eccodes.codes_set(h, "dataDate", 20210301)
            eccodes.codes_set_string(h, "stepRange", f"{start}-{end}")
            eccodes.codes_set_values(h, np.full(eccodes.codes_get(h, "numberOfValues"), value))
            eccodes.codes_write(h, f)
            eccodes.codes_release(h)
    return path


def _messages(src: Path) -> list[bytes]:
    out = []
    with open(src, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            out.append(eccodes.codes_get_message(h))
            eccodes.codes_release(h)
    return out


def _stated(ds) -> dict:
    return json.loads(ds.attrs[periods.ATTR])


def test_a_fixed_window_is_the_period(tmp_path):
    path = _write(tmp_path / "six.grib2", [("tp", 6, 12, 1.0), ("tp", 12, 18, 2.0)])
    ds = open_gridded(path)
    assert periods.of(ds.attrs, "x") == {"tp": 6.0}
    assert ds["fc_tp"].attrs["grib_step_range"] == "6-12, 12-18"
    assert check_grib(path) == 2


def test_windows_of_different_lengths_state_no_period(tmp_path):
    path = _write(tmp_path / "since.grib2", [("tp", 0, 6, 1.0), ("tp", 0, 12, 2.0)])
    ds = open_gridded(path)
    assert "accumulated since the start of the forecast (0-6 h, 0-12 h)" in _stated(ds)["tp"]
    assert periods.of(ds.attrs, str(path)) == {}  # no fixed period: stated, not a number
    assert "de-accumulate it first (probcast data build" in periods.unfixed(ds.attrs, "x")["tp"]
    path = _write(tmp_path / "mx.grib2", [("mx2t", 0, 1, 290.0), ("mx2t", 1, 3, 291.0)])
    assert "over windows of different lengths (0-1 h, 1-3 h)" in _stated(open_gridded(path))["tmax"]
    both = _write(tmp_path / "b.grib2", [("mx2t", 0, 6, 290.0), ("mx2t", 6, 12, 291.0)])
    assert periods.of(open_gridded(both).attrs, "x") == {"tmax": 6.0}


@pytest.mark.realdata
def test_the_window_read_of_two_is_stated(mirror, tmp_path):
    ds = open_gridded(mirror / HRRR)  # tp 0-12 h, then 11-12 h: cfgrib reads the first
    assert periods.of(ds.attrs, "x") == {"tp": 12.0}
    assert ds["fc_tp"].attrs["grib_step_range"] == "0-12"
    assert "also holds tp over 11-12 h, not read" in ds["fc_tp"].attrs["comment"]
    first, second = _messages(mirror / HRRR)
    (tmp_path / "rev.grib2").write_bytes(second + first)  # 11-12 h first: that one is read
    rev = open_gridded(tmp_path / "rev.grib2")
    assert periods.of(rev.attrs, "x") == {"tp": 1.0}
    assert float(rev["fc_tp"].max()) < float(ds["fc_tp"].max())  # the 1-h amounts indeed


@pytest.mark.realdata
def test_amounts_since_the_start_are_not_a_period(mirror):
    ds = open_gridded(mirror / ARPEGE)  # 0-1 h, 0-2 h, ..., 0-24 h
    assert _stated(ds)["tp"].startswith("accumulated since the start of the forecast (0-1 h")


@pytest.mark.realdata
def test_prediction_refuses_another_window_and_amounts_since_the_start(mirror, tmp_path, capsys):
    # amounts since the start are de-accumulated to the model's period when the model
    # knows it (tests/predict/test_predict_from_start.py); a model that does not refuses
    for name, stated in [("m1", '{"tp": 1.0}'), ("m0", None)]:
        train = forecast_grid((8, 10), 8, variables=("tp",), lead_hours=(12.0,))
        if stated:
            train.attrs[periods.ATTR] = stated  # a model of 1-h amounts
        write_dataset(train, tmp_path / f"{name}.nc")
        args = [f"--workdir={tmp_path / name}", f"--config.data.path={tmp_path / name}.nc"]
        assert main(["train", "--config=tiny", *args, "--config.train.epochs=1"]) == 0
    capsys.readouterr()
    for model, src, message in [
        ("m1", HRRR, "tp is over 12 h, but the model was trained on 1-h tp"),
        ("m0", ARPEGE, "accumulated since the start of the forecast (0-1 h, 0-2 h, ..., 0-24 h)"),
    ]:
        out = tmp_path / "out" / "p.nc"
        rc = main(["predict", f"--model={tmp_path / model}", f"--input={mirror / src}",
                   f"--output={out}", "--percentiles=50"])  # fmt: skip
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert rc == 1 and f"{mirror / src}: " in last and message in last, last
        assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.realdata
def test_a_model_without_tp_takes_a_file_of_amounts_since_the_start(mirror, tmp_path):
    # amounts since the start are refused only by a model that uses tp (target or fc_tp)
    ds = open_gridded(mirror / ARPEGE)
    assert "tp" in periods.unfixed(ds.attrs, "x")
    train = forecast_grid((8, 10), 8, variables=("t2m",), lead_hours=(12.0,), start="2020-11-01")
    write_dataset(train, tmp_path / "train.nc")
    args = [f"--workdir={tmp_path / 'm'}", f"--config.data.path={tmp_path / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1"]) == 0
    from probcast.model.artefact import load

    load(tmp_path / "m").check_periods(ds, "arpege")  # no error: t2m only
    with pytest.raises(ValueError, match="arpege: tp is accumulated since the start"):
        train_tp = forecast_grid((8, 10), 8, variables=("tp",), lead_hours=(12.0,))
        write_dataset(train_tp, tmp_path / "tp.nc")
        tp_args = [f"--workdir={tmp_path / 'mtp'}", f"--config.data.path={tmp_path / 'tp.nc'}"]
        assert main(["train", "--config=tiny", *tp_args, "--config.train.epochs=1"]) == 0
        load(tmp_path / "mtp").check_periods(ds, "arpege")
