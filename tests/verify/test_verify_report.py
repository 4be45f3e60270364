"""The HTML report: self-contained, every figure decodes, renders in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes

from probcast.testing import verification as syn
from probcast.verify import plots, report
from probcast.verify.evaluate import verify

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
)
_IMG_CHECK = (
    "<script>window.addEventListener('load',function(){"
    "var im=Array.prototype.slice.call(document.images);"
    "var ok=im.filter(function(i){return i.complete&&i.naturalWidth>0;}).length;"
    "document.title='IMGCHECK '+im.length+' '+ok;});</script>"
)


@pytest.fixture(scope="module")
def ver():
    truth, mu, sigma = syn.truth_table(n_stations=5, n_inits=12)
    fcs = {
        "raw": truth,
        "ens": syn.members_table(truth, mu, sigma, n_members=8),
        "q": syn.quantiles_table(truth, mu, sigma),
    }
    return verify(truth, fcs, reference="raw", by=["lead_time", "station"], n_boot=100)


@pytest.fixture(scope="module")
def report_file(ver, tmp_path_factory) -> Path:
    return report.write_report(ver, tmp_path_factory.mktemp("rep") / "report.html", title="T<&>")


def test_report_is_self_contained(report_file):
    text = report_file.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "T&lt;&amp;&gt;" in text  # title escaped
    assert not re.search(r"(src|href)=\"(?!data:)", text), "external resource referenced"
    assert "<script" not in text and "http://" not in text and "https://" not in text
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    # CRPS+CRPSS, PIT, spread-skill, reliability (1 threshold), station map
    assert len(uris) == 5
    for uri in uris:
        assert base64.b64decode(uri).startswith(PNG_MAGIC)
    assert "CRPSS [95% CI]" in text and "ens" in text
    assert oct(report_file.stat().st_mode & 0o777) != "0o600"


def test_report_without_reference_or_coordinates(ver):
    truth, mu, sigma = syn.truth_table(n_stations=2, n_inits=5)
    truth = truth.drop(columns=["latitude", "longitude"])
    v = verify(truth, {"ens": syn.members_table(truth, mu, sigma)}, by=[])
    html = report.render(v)
    assert "CRPSS by station" not in html and html.count("<img") >= 2  # PIT + reliability


def _chromium_dump(html_path: Path, tmp_path: Path) -> str:
    assert _CHROMIUM is not None
    cmd = [
        _CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000", "--dump-dom", html_path.as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.browser
@pytest.mark.skipif(_CHROMIUM is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(report_file, tmp_path):
    page = tmp_path / "check.html"
    page.write_text(report_file.read_text().replace("</body>", _IMG_CHECK + "</body>"))
    broken = tmp_path / "broken.html"  # negative control: the check must see a bad image
    broken.write_text(
        '<html><body><img src="data:image/png;base64,AAAA">' + _IMG_CHECK + "</body></html>"
    )
    title = re.search(r"<title>IMGCHECK (\d+) (\d+)</title>", _chromium_dump(page, tmp_path))
    assert title is not None, "the image check script did not run"
    assert int(title.group(1)) == 5 and title.group(1) == title.group(2)
    bad = re.search(r"<title>IMGCHECK (\d+) (\d+)</title>", _chromium_dump(broken, tmp_path))
    assert bad is not None and bad.groups() == ("1", "0")
    shot = tmp_path / "shot.png"
    cmd = [
        _CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}",
        "--window-size=1200,2400", report_file.as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    assert shot.read_bytes().startswith(PNG_MAGIC)


# The layout at a laptop width: every figure readable, nothing wider than the window.
_LAYOUT_CHECK = (
    "<script>window.addEventListener('load',function(){"
    "var w=document.documentElement.clientWidth;"
    "var im=Array.prototype.slice.call(document.images);"
    "var narrow=im.filter(function(i){return i.getBoundingClientRect().width<400;}).length;"
    "var sw=Math.max(document.documentElement.scrollWidth,document.body.scrollWidth);"
    "document.title='LAYOUT '+w+' '+im.length+' '+narrow+' '+sw;});</script>"
)
_LAYOUT = re.compile(r"<title>LAYOUT (\d+) (\d+) (\d+) (\d+)</title>")
THRESHOLDS = {"t2m": [276.0, 278.0, 280.0, 282.0, 284.0, 286.0, 288.0]}


@pytest.fixture(scope="module")
def wide_ver():
    """Many thresholds and methods: the figures that used to grow in one row."""
    truth, mu, sigma = syn.truth_table(n_stations=5, n_inits=12)
    fcs = {
        "raw": truth,
        "ens": syn.members_table(truth, mu, sigma, n_members=8),
        "q": syn.quantiles_table(truth, mu, sigma),
        "ens2": syn.members_table(truth, mu + 0.3, sigma, n_members=8, seed=3),
        "ens3": syn.members_table(truth, mu - 0.3, sigma * 1.2, n_members=8, seed=2),
    }
    return verify(truth, fcs, reference="raw", by=["lead_time", "station"], n_boot=50,
                  thresholds=THRESHOLDS)  # fmt: skip


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_figures_wrap_into_a_grid(wide_ver):
    png = plots.reliability(wide_ver, "t2m")
    assert png is not None
    width, height = _png_size(png)
    assert width <= 1150 and height > width  # 7 panels: 3 columns, 3 rows (was one row)
    for fn in (plots.pit_histograms, plots.station_map, plots.spread_skill, plots.crps_by_lead):
        fig = fn(wide_ver, "t2m")
        assert fig is not None and 400 <= _png_size(fig)[0] <= 1400, fn.__name__


def test_counts_are_integers(wide_ver):
    html = report.render(wide_ver)
    n = int(wide_ver.scores.query("by == 'all' and metric == 'n'")["value"].iloc[0])
    assert f"<td>{n}</td>" in html and f"{n}.0" not in html


def _layout(html_path: Path, tmp_path: Path, name: str) -> tuple[int, ...]:
    assert _CHROMIUM is not None
    page = tmp_path / f"{name}.html"
    page.write_text(html_path.read_text().replace("</body>", _LAYOUT_CHECK + "</body>"))
    cmd = [
        _CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / ('profile-' + name)}",
        "--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    found = _LAYOUT.search(res.stdout)
    assert found is not None, "the layout check script did not run"
    return tuple(int(g) for g in found.groups())


@pytest.mark.browser
@pytest.mark.skipif(_CHROMIUM is None, reason="chromium not installed")
def test_report_layout_at_1280_px(wide_ver, tmp_path):
    path = report.write_report(wide_ver, tmp_path / "report.html")
    width, n_images, narrow, scroll_width = _layout(path, tmp_path, "report")
    assert width == 1280 and n_images == 5
    assert narrow == 0, f"{narrow} figure(s) narrower than 400 px"
    assert scroll_width <= width, f"horizontal scroll: page {scroll_width} px > {width} px"
    # negative control: the same check sees a narrow figure and a too-wide page
    png = plots.spread_skill(wide_ver, "t2m")
    assert png is not None
    uri = base64.b64encode(png).decode()
    bad = tmp_path / "bad.html"
    bad.write_text(
        f'<html><body><img style="width:300px" src="data:image/png;base64,{uri}">'
        '<div style="width:2000px">wide</div></body></html>'
    )
    _, n_bad, narrow_bad, scroll_bad = _layout(bad, tmp_path, "bad")
    assert (n_bad, narrow_bad) == (1, 1) and scroll_bad > 1280


def test_members_are_scored_as_vectors_and_reported(ver):
    s = ver.scores[ver.scores["by"] == "all"]
    multi = s[s["metric"].str.contains("energy|variogram|lead_sum|pit_corr")]
    # only the forecast with members; vectors over 3 leads and over 5 stations
    assert set(multi["method"]) == {"ens"}
    assert set(multi["metric"]) == {
        "energy_lead_time",
        "variogram_lead_time",
        "crps_lead_sum",
        "pit_corr_lead_time",
        "energy_station",
        "variogram_station",
        "pit_corr_station",
    }
    energy = ver.value("ens", "t2m", "energy_lead_time")
    assert 0 < energy < 50
    # independent truth: no dependence left between components
    assert abs(ver.value("ens", "t2m", "pit_corr_station")) < 0.2
    html_text = report.render(ver)
    assert "Members as scenarios" in html_text and "energy (leads)" in html_text


def test_multivariate_scores_can_be_left_out():
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=4)
    ens = syn.members_table(truth, mu, sigma, n_members=5)
    quiet = verify(truth, {"ens": ens}, n_boot=10, multivariate=False)
    assert not quiet.scores["metric"].str.startswith("energy").any()
    assert "Members as scenarios" not in report.render(quiet)


def test_scores_stay_numeric_without_members():
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=4)
    quiet = verify(truth, {"raw": truth, "q": syn.quantiles_table(truth, mu, sigma)}, n_boot=10)
    assert quiet.scores["value"].dtype == "float64"
    assert report.render(quiet).startswith("<!DOCTYPE html>")


def test_spread_skill_by_lead_time_carries_its_interval_into_the_figure(ver, monkeypatch):
    s = ver.scores[(ver.scores["by"] == "lead_time") & (ver.scores["method"] == "ens")]
    wide = s.pivot_table(index="key", columns="metric", values="value")
    lo, mid, hi = (wide[m] for m in ("spread_skill_lo", "spread_skill", "spread_skill_hi"))
    assert len(wide) == 3 and (lo < mid).all() and (mid < hi).all()
    # the figure draws that band for each method with a spread
    bands = []
    monkeypatch.setattr(
        Axes, "fill_between", lambda self, x, a, b, **kw: bands.append(np.asarray(b))
    )
    assert plots.spread_skill(ver, "t2m") is not None
    assert any(np.allclose(b, hi.sort_index(key=lambda k: k.astype(float))) for b in bands)
