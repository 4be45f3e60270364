"""Exit status with eccodes and pyproj in one process (docs/faults.md, "Two PROJ/SQLite copies").

eccodes loads eckitlib's bundled PROJ 9.8 and SQLite 3.26 with ``RTLD_GLOBAL``; a pyproj or
sqlite3 loaded after them binds to those copies and the process aborts at exit (status 134
or 139) after its work is done. ``import probcast`` loads them first, or with
``RTLD_DEEPBIND`` when eccodes came first. Each case runs in a fresh interpreter on real
GRIB samples and must exit 0 with clean stderr (no "unable to set PROJ database path").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GRIB = "ecmwf-hres-grib1/an_msl_sfc.grib"
CF_LCC = {
    "grid_mapping_name": "lambert_conformal_conic",
    "standard_parallel": [50.0, 50.0],
    "longitude_of_central_meridian": 8.0,
    "latitude_of_projection_origin": 50.0,
}


def _python(*parts: str, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    code = "\n".join(textwrap.dedent(p) for p in parts)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    tail = (proc.stdout + proc.stderr)[-2000:]
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{tail}"
    assert "PROJ database" not in proc.stderr, tail


USE_PYPROJ = f"""
    import sqlite3
    from pyproj import CRS, Transformer
    crs = CRS.from_cf({CF_LCC!r})
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(8.0, 50.0)
    assert abs(x) < 1e-6 and abs(y) < 1e-6, (x, y)
    assert crs.to_cf()["grid_mapping_name"] == "lambert_conformal_conic"
    assert tuple(map(int, sqlite3.sqlite_version.split("."))) >= (3, 31), sqlite3.sqlite_version
    print("ok")
"""


def test_grib_through_probcast_then_pyproj(mirror):
    """probcast's GRIB reader (cfgrib) and its CF grid mapping, then PROJ transforms."""
    proc = _python(
        """
        import sys
        from probcast.ingest.gridded import open_gridded
        from probcast.products import cf
        ds = open_gridded(sys.argv[1])
        assert ds["fc_msl"].size > 0 and float(ds["fc_msl"].mean()) > 90000
        assert cf.grid_mapping_name(ds) is None  # a regular latitude/longitude grid
        """,
        USE_PYPROJ,
        args=(str(mirror / GRIB),),
    )
    _assert_clean(proc)


def test_eccodes_imported_before_probcast(mirror):
    """A user's script that reads GRIB with eccodes/cfgrib before ``import probcast``."""
    proc = _python(
        """
        import sys
        import eccodes
        import xarray as xr
        ds = xr.open_dataset(sys.argv[1], engine="cfgrib", indexpath="")
        assert ds["msl"].size > 0
        import probcast
        """,
        USE_PYPROJ,
        args=(str(mirror / GRIB),),
    )
    _assert_clean(proc)


def test_plain_import_order_still_crashes_without_probcast():
    """The fault itself, so the guard above is known to be needed in this environment."""
    proc = _python("import eccodes\nimport pyproj\npyproj.CRS.from_epsg(3035)\n")
    if proc.returncode == 0 and "PROJ database" not in proc.stderr:
        pytest.skip("eccodes and pyproj no longer clash here; the guard is harmless")
    assert proc.returncode != 0 or "PROJ database" in proc.stderr


def _cli() -> str:
    exe = Path(sys.executable).with_name("probcast")
    found = str(exe) if exe.exists() else shutil.which("probcast")
    if found is None:
        pytest.skip("the probcast command is not installed")
    return found


def test_cli_data_refs_and_grid_build(mirror, tmp_path):
    """``probcast data refs`` and a zarr-grid ``data build`` on real GRIB exit 0."""
    from probcast.testing.arco import write_arco_store

    cli = _cli()
    g = mirror / "ecmwf-hres-grib1"
    refs = subprocess.run(
        [cli, "data", "refs", "--archive", str(g / "an_msl_sfc.grib"), "--out", "refs.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    _assert_clean(refs)
    assert json.loads((tmp_path / "refs.json").read_text())["refs"]
    write_arco_store(tmp_path / "arco.zarr", "2016-09-25", 24)
    spec = {
        "nwp": {"source": "archive", "paths": [str(g / "an_msl_sfc.grib")]},
        "truth": {"source": "arco-era5", "paths": str(tmp_path / "arco.zarr")},
        "variables": ["msl"],
        "period": {"start": "2016-09-25", "end": "2016-09-25"},
        "lead_times": [0],
        "area": [60, -10, 40, 10],
        "output": {"kind": "zarr-grid"},
    }
    (tmp_path / "build.yaml").write_text(json.dumps(spec))
    build = subprocess.run(
        [cli, "data", "build", "--config", "build.yaml", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    _assert_clean(build)
    summary = json.loads((tmp_path / "out" / "build-summary.json").read_text())
    assert summary["cycles_written"] == ["2016-09-25T00:00Z", "2016-09-25T12:00Z"]
