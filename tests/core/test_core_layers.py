"""The package structure: dependencies point down, modules fit in one read, a small API.

Every import of a probcast module (at module level or inside a function, so none can hide
an upward arrow) must go to a strictly lower layer than the importing component.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import probcast

SRC = Path(probcast.__file__).resolve().parent

LAYERS: list[set[str]] = [
    {
        "__init__",
        "schema",
        "io",
        "defaults",
        "logs",
        "progress",
        "configs",
        "split",
        "recent",
        "time_features",
        "compile_cache",
        "plausibility",
        "geo",
        "periods",
        "argtypes",
        "station_ids",
    },
    {"ranges", "fileset"},
    {"dists", "validate", "features", "units"},
    {"ingest", "baselines"},
    {"align", "sources", "products"},
    {"data", "model"},
    {"verify"},
    {"train"},
    {"predict"},
    {"bench", "testing", "cli", "ops", "monitor"},
]
"""From the bottom up: the foundations, the physical ranges of the variables (on the schema)
and multi-file output sets (on io),
the predictive distribution, readers and classical
baselines, alignment / raw sources / products, datasets and the model, verification,
training (its post-hoc choices use verification's scores), prediction, and the harness and
entry point on top."""

RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _component(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__version__":
        return "__init__"
    return parts[1]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append((name, path))
    return out


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "probcast":
                found.update(f"probcast.{a.name}" for a in node.names)
    return {m for m in found if m == "probcast" or m.startswith("probcast.")}


def test_every_component_has_a_layer():
    components = {_component(name) for name, _ in _modules()}
    assert components <= set(RANK), f"add to LAYERS: {sorted(components - set(RANK))}"


def test_imports_point_down():
    upward = []
    for name, path in _modules():
        if name == "probcast":  # the package face re-exports the public API from above it
            continue
        src = _component(name)
        for target in map(_component, _imports(path)):
            if target != src and RANK[target] >= RANK[src]:
                upward.append(f"{name} -> probcast.{target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(set(upward)))


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[n for n, _ in _modules()])
def test_modules_fit_in_one_read(name, path):
    assert len(path.read_text().splitlines()) < 400, f"{name} has 400 lines or more: split it"


def test_public_api_resolves():
    # The subpackages (probcast.train, probcast.verify) must not shadow API names.
    import probcast.train.loop
    import probcast.verify.evaluate

    for name in probcast.__all__:
        value = getattr(probcast, name)
        assert value is not None and not inspect.ismodule(value), name
    with pytest.raises(AttributeError):
        probcast.no_such_thing  # noqa: B018
