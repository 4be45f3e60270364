"""GRIB edge cases: corrupted, truncated, mixed hypercubes, missing values; read-only mirror."""

from __future__ import annotations

from pathlib import Path

import eccodes
import numpy as np
import pytest

from probcast.ingest.gridded import GriddedReadError, check_grib, open_gridded

pytestmark = pytest.mark.realdata


def first_messages(src: Path, dst: Path, n: int, mode: str = "wb") -> Path:
    """Copy the first ``n`` GRIB messages of ``src`` to ``dst`` (append with mode='ab')."""
    with open(src, "rb") as f, open(dst, mode) as g:
        for _ in range(n):
            handle = eccodes.codes_grib_new_from_file(f)
            g.write(eccodes.codes_get_message(handle))
            eccodes.codes_release(handle)
    return dst


def test_corrupted_sample_names_file_and_message(mirror: Path):
    path = mirror / "grib-samples/era5-levels-corrupted.grib"
    with pytest.raises(GriddedReadError) as err:
        open_gridded(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "message 1 at byte 0" in msg
    assert "expected complete GRIB messages" in msg


def test_truncated_copy_fails(mirror: Path, tmp_path: Path):
    good = (mirror / "grib-samples/regular_gg_sfc.grib").read_bytes()
    cut = tmp_path / "cut.grib"
    cut.write_bytes(good[: len(good) * 2 // 3])
    with pytest.raises(GriddedReadError, match=r"cut.grib: corrupted or truncated GRIB"):
        open_gridded(cut)


def test_truncated_after_good_messages_names_the_bad_one(mirror: Path, tmp_path: Path):
    path = first_messages(
        mirror / "arpege-grib/arpege_PRECIP_NW_20180501000000.grib", tmp_path / "p.grib", 3
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(GriddedReadError, match=r"message 3 at byte"):
        check_grib(path)


def test_mixed_levels_are_merged(mirror: Path, tmp_path: Path):
    arpege = mirror / "arpege-grib"
    path = first_messages(arpege / "arpege_2m_NW_20180501000000.grib", tmp_path / "m.grib", 6)
    first_messages(arpege / "arpege_PRECIP_NW_20180501000000.grib", path, 3, mode="ab")
    first_messages(mirror / "grib-samples/t_analysis_and_fc_0.grib", path, 1, mode="ab")
    ds = open_gridded(path)
    assert {"fc_t2m", "fc_tp"} <= set(ds.data_vars)
    assert "fc_t" not in ds  # the pressure-level field is not a canonical surface variable
    assert ds["fc_tp"].dims == ds["fc_t2m"].dims


def test_multi_hypercube_keep_unknown(mirror: Path):
    ds = open_gridded(mirror / "grib-samples/multi_param_on_multi_dims.grib", keep_unknown=True)
    assert {"fc_t", "fc_u", "fc_z"} == set(ds.data_vars)
    assert ds["fc_t"].dims == (
        "forecast_reference_time",
        "forecast_period",
        "isobaricInhPa",
        "latitude",
        "longitude",
    )


def test_missing_values_become_nan(mirror: Path):
    ds = open_gridded(mirror / "grib-samples/fields_with_missing_values.grib")
    values = ds["fc_t2m"].values
    assert np.isnan(values).sum() > 0
    assert np.nanmax(values) < 400  # the GRIB missing value 9999 is not read as data


def test_no_index_files_written(mirror: Path, tmp_path: Path):
    path = first_messages(mirror / "grib-samples/step_60m.grib", tmp_path / "s.grib", 2)
    open_gridded(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.grib"]


def test_empty_grib_like_file(tmp_path: Path):
    (tmp_path / "e.grib").write_bytes(b"GRIB")
    with pytest.raises(GriddedReadError, match=r"e.grib: corrupted or truncated GRIB"):
        open_gridded(tmp_path / "e.grib")
