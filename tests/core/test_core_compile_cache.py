"""JAX's persistent compilation cache (probcast.compile_cache), in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from probcast import compile_cache

# One fresh process: enable the cache (before or after importing JAX), compile a function
# slow enough to be written, and report the cache hits and the folder JAX uses.
SCRIPT = """
import json, sys
from probcast import compile_cache
if sys.argv[1] == "after":
    import jax
folder = compile_cache.enable()
import jax, jax.numpy as jnp
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
f = jax.jit(lambda x: jnp.cumsum(jnp.sort(jnp.sin(x) * 3.0)) @ x)
f(jnp.arange(17.0)).block_until_ready()
print(json.dumps({"folder": str(folder) if folder else None, "hits": len(hits),
                  "jax_dir": jax.config.jax_compilation_cache_dir}))
"""


def _process(
    env: dict[str, str], code: str = SCRIPT, *args: str, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` with ``env`` over this environment less JAX's own variables."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _report(out: subprocess.CompletedProcess[str]) -> dict[str, object]:
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run(env: dict[str, str], when: str = "before") -> dict[str, object]:
    return _report(_process(env, SCRIPT, when, check=True))


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


@pytest.mark.parametrize("when", ["before", "after"])
def test_second_process_reads_what_the_first_compiled(tmp_path: Path, when: str) -> None:
    folder = tmp_path / "jax"
    first = _run({"PROBCAST_JAX_CACHE": str(folder)}, when)
    assert first["folder"] == first["jax_dir"] == str(folder)
    assert first["hits"] == 0
    written = _entries(folder)
    assert written, "nothing was written to the cache"
    second = _run({"PROBCAST_JAX_CACHE": str(folder)}, when)
    assert second["hits"] >= 1
    assert sorted(_entries(folder)) == sorted(written)  # nothing compiled twice


def test_off_and_default_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBCAST_JAX_CACHE", "off")
    assert compile_cache.default_dir() is None
    assert _run({"PROBCAST_JAX_CACHE": "off"})["jax_dir"] is None
    monkeypatch.delenv("PROBCAST_JAX_CACHE")
    monkeypatch.setenv("PROBCAST_CACHE", str(tmp_path / "c"))
    assert compile_cache.default_dir() == tmp_path / "c" / "jax"
    monkeypatch.setenv("PROBCAST_JAX_CACHE", "~/x")
    assert compile_cache.default_dir() == Path("~/x").expanduser()


def test_a_folder_set_for_jax_itself_is_kept(tmp_path: Path) -> None:
    own = tmp_path / "own"
    got = _run(
        {"PROBCAST_JAX_CACHE": str(tmp_path / "ours"), "JAX_COMPILATION_CACHE_DIR": str(own)}
    )
    assert got["folder"] == got["jax_dir"] == str(own)
    assert not (tmp_path / "ours").exists()


def test_unwritable_folder_warns_and_compiles_without_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = _process({"PROBCAST_JAX_CACHE": str(blocker / "jax")}, SCRIPT, "before", check=True)
    got = _report(out)
    assert got["folder"] is None and got["jax_dir"] is None
    assert "JAX compilation cache disabled: cannot write to" in out.stderr
    assert "PROBCAST_JAX_CACHE" in out.stderr


def test_the_probcast_command_enables_it(tmp_path: Path) -> None:
    folder = tmp_path / "jax"
    code = (
        "import os, sys\n"
        "from probcast import cli\n"
        "rc = cli.main(['data', 'list'])\n"
        "print(os.environ.get('JAX_COMPILATION_CACHE_DIR'))\n"
        "sys.exit(rc)\n"
    )
    out = _process({"PROBCAST_JAX_CACHE": str(folder)}, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(folder)
    assert folder.is_dir()


def test_entry_that_cannot_be_written_costs_a_compile_not_a_message(tmp_path: Path) -> None:
    import resource

    def small_files() -> None:  # a file-size limit (ulimit -f) below any cache entry
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    env = {"PROBCAST_JAX_CACHE": str(tmp_path / "jax")}
    out = _process(env, SCRIPT, "before", check=True, preexec_fn=small_files)
    assert _report(out)["hits"] == 0
    assert "compilation cache" not in out.stderr, out.stderr


def test_jax_writes_no_eviction_bookkeeping(tmp_path: Path) -> None:
    """JAX's own LRU eviction (a scan of the whole folder per write) is off."""
    folder = tmp_path / "jax"
    _run({"PROBCAST_JAX_CACHE": str(folder)})
    names = [p.name for p in _entries(folder)]
    assert names and all(n.endswith("-cache") for n in names), names


def test_prune_removes_the_least_recently_used_entries(tmp_path: Path) -> None:
    folder = tmp_path / "jax"
    folder.mkdir()
    for i in range(10):  # entry i last used at time 1000 + i, 100 bytes each
        entry = folder / f"jit_f-{i:02d}-cache"
        entry.write_bytes(b"x" * 100)
        (folder / f"jit_f-{i:02d}-atime").write_bytes(b"t")
        os.utime(entry, (1000 + i, 1000 + i))
    os.utime(folder / "jit_f-02-cache", (5000, 1000))  # old entry, read recently
    (folder / "notes.txt").write_bytes(b"y" * 5000)  # not an entry: neither counted nor removed
    assert compile_cache.prune(folder, max_bytes=1000) == 0  # at the limit
    assert compile_cache.prune(folder, max_bytes=900) == 3  # down to 0.8 * 900 = 720 bytes
    left = sorted(p.name for p in folder.iterdir())
    gone = ["jit_f-00", "jit_f-01", "jit_f-03"]
    assert not [n for n in left if n.rsplit("-", 1)[0] in gone]
    assert "jit_f-02-cache" in left and "jit_f-09-cache" in left and "notes.txt" in left
    assert compile_cache.prune(tmp_path / "missing") == 0


def test_enabling_prunes_a_folder_over_its_limit_at_most_hourly(tmp_path: Path) -> None:
    folder = tmp_path / "jax"
    folder.mkdir()

    def add(first: int) -> None:
        for i in range(first, first + 5):
            (folder / f"e{i}-cache").write_bytes(b"x" * 100)

    def size() -> int:
        return sum(p.stat().st_size for p in folder.glob("*-cache"))

    code = (
        "import sys\n"
        "from probcast import compile_cache\n"
        "compile_cache.MAX_BYTES = 250\n"
        "print(compile_cache.enable(sys.argv[1]))\n"
    )
    add(0)
    out = _process({}, code, str(folder), check=True)
    assert out.stdout.strip() == str(folder)
    assert size() == 200  # pruned to 0.8 x 250 at most
    add(10)  # over the limit again, within the hour: no second scan
    _process({}, code, str(folder), check=True)
    assert size() == 700
    stamp = folder / compile_cache.STAMP
    old = stamp.stat().st_mtime - compile_cache.PRUNE_EVERY_S - 1
    os.utime(stamp, (old, old))  # an hour later
    _process({}, code, str(folder), check=True)
    assert size() == 200
