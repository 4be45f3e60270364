"""A folder output (a Zarr store) replacing an older one is never absent (audit).

``probcast.io.replace`` moved the old folder aside, then the new one into place: a kill
between the two renames left neither at the final name, and the next sweep of temporaries
deleted the old one.
"""

from __future__ import annotations

import ctypes
import os

import pytest

from probcast import io


def _folder(path, text):
    path.mkdir()
    (path / "data").write_text(text)


def test_a_folder_is_exchanged_in_one_step(tmp_path, monkeypatch):
    if not hasattr(ctypes.CDLL(None), "renameat2"):  # pragma: no cover
        pytest.skip("no renameat2 in this C library")
    final = tmp_path / "out.zarr"
    _folder(final, "old")
    renames = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)), real(a, b)))
    with io.atomic_path(final) as tmp:
        _folder(tmp, "new")
    assert renames == []  # no moment without a folder at the final name
    assert (final / "data").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]  # the old one removed


def test_without_the_exchange_the_two_renames_still_replace(tmp_path, monkeypatch):
    final = tmp_path / "out.zarr"
    _folder(final, "old")
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    with io.atomic_path(final) as tmp:
        _folder(tmp, "new")
    assert (final / "data").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


def test_a_write_removes_the_temporaries_a_killed_writer_left(tmp_path):
    dead = tmp_path / f".p.csv{io.TMP_MARK}999999999-0123456789ab"  # (no such pid)
    dead.write_text("half")
    mine = tmp_path / f".p.csv{io.TMP_MARK}{os.getpid()}-0123456789ab"  # (alive: kept)
    mine.write_text("in flight")
    other = tmp_path / f".q.csv{io.TMP_MARK}999999999-0123456789ab"  # (another target)
    other.write_text("other")
    io.write_text(tmp_path / "p.csv", "a,b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p.csv", mine.name, other.name])
