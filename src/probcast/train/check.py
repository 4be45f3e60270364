"""Checks made before a training claims its work directory, and the cleanup of a failed one.

:func:`check_config` checks every field of a training config that can be checked without
the data (types, ranges, choices, the consistency of the head options) and raises
:class:`ConfigError` naming the first wrong field, its value and what is expected, so that a
typo fails at once instead of after reading the table, writing the artefact's metadata or
training for a while. :func:`data_problem` names a ``data.path`` that cannot be read at
all. What only the data can tell (targets without an ``obs_`` column, missing predictors)
is checked when the table is read; :func:`reading_data` names the data file in those
errors.

:func:`discard_on_failure` removes the work directory of a run that created it and failed
before any network saved a checkpoint: the corrected command then starts afresh instead of
being refused as "a run with a different model". A directory the user already had, and a
run with saved training progress (resumable), are never removed.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from probcast import periods
from probcast.configs import default
from probcast.schema import TABLE_SUFFIXES
from probcast.train.workdir import LOCK

MISSING = ("impute", "error")
"""``features.missing``."""
ROUTES = ("heads", "trunk")
"""``model.noise_to`` and ``model.recent_errors_to``."""
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
"""``train.compute_dtype`` (:data:`probcast.train.loop.DTYPES`)."""
DAY_OF_YEAR = ("auto", "true", "false", "1", "0", "yes", "no")
"""``features.day_of_year`` (:func:`probcast.time_features.use_day_of_year`)."""

# int fields: least value
INT_MIN = {
    "model.noise_dim": 0,
    "model.head_hidden": 1,
    "model.embed_dim": 0,
    "model.embed_min_rows": 0,
    "model.hidden": 1,
    "model.rows_per_unit": 0,
    "model.n_layers": 1,
    "train.seed": 0,
    "train.n_seeds": 1,
    "train.batch_size": 1,
    "train.epochs": 1,
    "train.warmup_epochs": 0,
    "train.patience": 1,
    "train.cv_folds": 0,
    "train.cv_seeds_per_fold": 1,
    "train.cv_max_rows": 0,
    "train.emos_max_rows": 0,
    "train.ensemble_members": 1,
    "train.eval_batch_size": 1,
    "train.log_every": 1,
    "train.stream_chunk_rows": 1,
    "train.stream_shuffle_rows": 0,
    "train.stream_read_rows": 1,
    "train.stream_val_max_rows": 0,
}
# float fields: (least, least allowed, greatest, greatest allowed)
FLOAT_RANGE = {
    "data.val_fraction": (0.0, True, 1.0, False),
    "features.recent_error_hours": (0.0, True, math.inf, False),
    "model.dropout": (0.0, True, 1.0, False),
    "train.learning_rate": (0.0, False, math.inf, False),
    "train.end_lr_factor": (0.0, True, 1.0, True),
    "train.weight_decay": (0.0, True, math.inf, False),
    "train.grad_clip": (0.0, False, math.inf, False),
    "train.recalibrate_max_cost": (0.0, True, math.inf, False),
    "train.checkpoint_every_s": (0.0, True, math.inf, False),
    "train.stream_above_gib": (0.0, True, math.inf, False),
}
# fields the training reads with a default when a config lacks them (config.get, _option)
OPTIONAL = {
    *(f"features.{k}" for k in default.get_config().features),
    "model.recent_errors_to",
    "train.cv_folds",
    "train.cv_max_rows",
    "train.cv_seeds_per_fold",
    "train.emos_max_rows",
    "train.recalibrate",
    "train.recalibrate_gate",
    "train.recalibrate_max_cost",
    "train.stream",
    "train.stream_above_gib",
    "train.stream_val_max_rows",
    "train.checkpoint_every_s",
}


class ConfigError(ValueError):
    """A config field with a value the training cannot use (``probcast train`` exits 2)."""


class DataError(ValueError):
    """An error while reading the training data, with the data file named."""


def _names(text: Any) -> list[str]:
    return [v.strip() for v in str(text).split(",") if v.strip()]


def _bad(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key}={value!r}: expected {expected}")


def _within(value: float, bounds: tuple[float, bool, float, bool]) -> bool:
    lo, lo_in, hi, hi_in = bounds
    above = value > lo or (lo_in and value == lo)
    below = value < hi or (hi_in and value == hi)
    return math.isfinite(value) and above and below


def _range_text(bounds: tuple[float, bool, float, bool]) -> str:
    lo, lo_in, hi, hi_in = bounds
    if math.isinf(hi):
        return f"a finite number {'>=' if lo_in else '>'} {lo:g}"
    return f"a number in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _check_types(config: Any) -> dict[str, Any]:
    """Sections, field names and value types against ``configs/default.py``; the fields."""
    import difflib

    if not hasattr(config, "items"):
        raise ConfigError(f"the config is a {type(config).__name__}; expected a ConfigDict")
    base = default.get_config()
    strays = [s for s in config if s not in base]
    if strays:
        raise ConfigError(f"the config has an unknown section {strays[0]!r}; sections {list(base)}")
    values: dict[str, Any] = {}
    for section, fields in base.items():
        given: Any = config.get(section) if section in config else None
        if not hasattr(given, "items"):
            raise ConfigError(
                f"the config has no section {section!r}; start a config file from "
                "probcast.configs.default.get_config()"
            )
        for name, value in given.items():
            key = f"{section}.{name}"
            if name not in fields:
                close = difflib.get_close_matches(key, [f"{section}.{k}" for k in fields], n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"the config has an unknown field {key}{hint}")
            values[key] = value
        for name, value in fields.items():
            key = f"{section}.{name}"
            if key not in values:
                if key not in OPTIONAL:
                    raise ConfigError(f"the config has no field {key}")
                values[key] = value  # the training's default
                continue
            _check_type(key, values[key], value)
    return values


def _check_type(key: str, value: Any, like: Any) -> None:
    if key == "features.day_of_year" and isinstance(value, bool):
        return
    if isinstance(like, bool):
        if not isinstance(value, bool):
            raise _bad(key, value, "true or false")
    elif isinstance(like, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(key, value, "an integer")
    elif isinstance(like, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(key, value, "a number")
    elif isinstance(like, str) and not isinstance(value, str):
        raise _bad(key, value, "a string")


def _check_choices(v: dict[str, Any]) -> None:
    from probcast.model.trunk import activation
    from probcast.train.tracking import BACKENDS

    choices: dict[str, tuple[str, ...]] = {
        "features.missing": MISSING,
        "model.noise_to": ROUTES,
        "model.recent_errors_to": ROUTES,
        "train.compute_dtype": COMPUTE_DTYPES,
        "tracking.backend": BACKENDS,
    }
    for key, allowed in choices.items():
        if v[key] not in allowed:
            raise _bad(key, v[key], "one of " + ", ".join(map(repr, allowed)))
    doy = v["features.day_of_year"]
    if not isinstance(doy, bool) and doy.strip().lower() not in DAY_OF_YEAR:
        raise _bad("features.day_of_year", doy, "'auto', 'true' or 'false'")
    try:
        activation(v["model.activation"])
    except ValueError as err:
        known = str(err).split("expected ")[-1]
        raise _bad("model.activation", v["model.activation"], known) from None
    if v["tracking.backend"] != "none" and not v["tracking.experiment"].strip():
        raise _bad("tracking.experiment", v["tracking.experiment"], "a name (not empty)")


def _check_formats(v: dict[str, Any]) -> None:
    import pandas as pd

    date = v["data.split_date"]
    if date.strip():
        try:
            pd.Timestamp(date)
        except ValueError:
            raise _bad("data.split_date", date, "an ISO date such as 2021-06-01, or ''") from None
    try:
        periods.parse(v["data.periods"], "data.periods")
    except ValueError as err:
        raise ConfigError(f"data.periods={v['data.periods']!r}: {err}") from None
    for key in ("data.targets", "features.predictors"):
        names = _names(v[key])
        if len(set(names)) != len(names):
            raise _bad(key, v[key], "a comma list without repeated names")
    windows = v["features.neighbourhood"]
    try:
        edges = [int(k) for k in _names(windows)]
    except ValueError:
        edges = [0]
    if any(k < 3 or k % 2 == 0 for k in edges) or len(set(edges)) != len(edges):
        raise _bad(
            "features.neighbourhood", windows, "'' or distinct odd integers >= 3 such as '3,7'"
        )


def _check_heads(v: dict[str, Any]) -> None:
    """``model.distributions`` / ``generative`` / ``noise_to`` against the targets if named."""
    from probcast.dists import DISTRIBUTIONS

    targets = _names(v["data.targets"])
    gen = set(_names(v["model.generative"]))
    if targets and gen - {"all"} - set(targets):
        raise _bad("model.generative", v["model.generative"], f"'all' or targets among {targets}")
    families: dict[str, str] = {}
    for item in _names(v["model.distributions"]):
        var, sep, name = (s.strip() for s in item.partition(":"))
        if not sep or not var:
            raise _bad("model.distributions", item, "items 'variable:family', e.g. 'tp:normal'")
        given = v["model.distributions"]
        if name not in DISTRIBUTIONS:
            known = ", ".join(sorted(DISTRIBUTIONS))
            raise _bad("model.distributions", given, f"families among {known} (not {name!r})")
        if var in families:
            raise _bad("model.distributions", given, f"each variable once ({var!r} repeats)")
        if targets and var not in targets:
            raise _bad("model.distributions", given, f"targets among {targets} (not {var!r})")
        if var in gen or "all" in gen:
            why = f"no family for {var!r}, a generative head (model.generative)"
            raise _bad("model.distributions", given, why)
        families[var] = name
    if gen:
        if v["model.noise_dim"] < 1:
            raise _bad("model.noise_dim", v["model.noise_dim"], ">= 1 with generative heads")
        if v["train.ensemble_members"] < 2:
            members = v["train.ensemble_members"]
            raise _bad("train.ensemble_members", members, ">= 2 with generative heads")
    covered = "all" in gen or (targets and set(targets) <= gen)
    if v["model.noise_to"] == "trunk" and not covered and (targets or not gen):
        raise _bad("model.noise_to", "trunk", "every target generative (model.generative=all)")


def check_config(config: Any) -> None:
    """Check every field of a training config that can be checked without the data.

    Raises:
        ConfigError: Naming the first bad field, its value and what is expected.
    """
    v = _check_types(config)
    for key, least in INT_MIN.items():
        if v[key] < least:
            raise _bad(key, v[key], f"an integer >= {least}")
    for key, bounds in FLOAT_RANGE.items():
        if not _within(float(v[key]), bounds):
            raise _bad(key, v[key], _range_text(bounds))
    _check_choices(v)
    _check_formats(v)
    _check_heads(v)


def data_problem(path: str, stream: bool = False) -> str | None:
    """Why ``data.path`` cannot be read at all (empty, a folder, an unknown dataset), or None.

    A folder of Parquet partitions (``probcast data build``'s ``init_date=*/*.parquet``) is
    read when the training streams it (``train.stream``, or ``train.stream_above_gib``
    exceeded: ``stream``).
    """
    from probcast.align.points import GRID_SUFFIXES

    if not path:
        return "config.data.path is empty: name a station table or a dataset id"
    p = Path(path)
    zarr_store = (p / "zarr.json").exists() or (p / ".zgroup").exists()
    partitions = p.is_dir() and any(p.glob("init_date=*/*.parquet"))
    if partitions and not stream:
        return (
            f"{p}: is a folder of Parquet partitions (a probcast data build output): train "
            f"on {p / 'table.parquet'}, or stream the partitions with --config.train.stream=True"
        )
    if p.is_dir() and not zarr_store and not partitions:
        return (
            f"{p}: is a directory; --config.data.path needs a station table (CSV/Parquet), "
            "a folder of Parquet partitions (with --config.train.stream=True) or a registry "
            "dataset id"
        )
    suffixes = (*TABLE_SUFFIXES, *GRID_SUFFIXES)
    if p.exists() or p.suffix.lower() in suffixes or path.startswith("reference://"):
        return None  # a file: its reader names what is wrong with it
    from probcast.data.prepare import converter
    from probcast.data.registry import DatasetError

    try:
        converter(path)  # a registry dataset id
    except DatasetError as err:
        return str(err)
    return None


@contextlib.contextmanager
def reading_data(path: Any) -> Iterator[None]:
    """Name the data file ``path`` in an error raised while reading it (unless named)."""
    try:
        yield
    except (ValueError, KeyError, OSError) as err:
        if isinstance(err, OSError) and err.filename:
            raise
        p = Path(str(path))
        msg = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
        if not p.is_file() or str(p) in msg or p.name in msg:
            raise
        raise DataError(f"{p}: {msg}") from err


def trained_anything(workdir: Path) -> bool:
    """Whether a network of the run in ``workdir`` saved a checkpoint or finished."""
    seeds = [*workdir.glob("seed_*"), *(workdir / "selection").glob("seed_*")]
    for seed in seeds:
        steps = [*seed.glob("latest/*"), *seed.glob("best/*")]
        if (seed / "DONE.json").exists() or any(s.name.isdigit() for s in steps):
            return True
    return False


@contextlib.contextmanager
def discard_on_failure(workdir: Path) -> Iterator[None]:
    """Remove ``workdir`` (and the parents made for it) if the training in it fails.

    Only a directory that did not exist before, whose lock is this process's and where no
    network saved anything (:func:`trained_anything`): a run with checkpoints resumes.
    """
    workdir = Path(workdir).absolute()
    top = None if workdir.exists() else workdir
    while top is not None and not top.parent.exists():
        top = top.parent
    try:
        yield
    except BaseException:
        if top is not None and workdir.is_dir() and not trained_anything(workdir):
            _remove(workdir, top)
        raise


def _remove(workdir: Path, top: Path) -> None:
    try:
        holder = (workdir / LOCK).read_text().strip()
    except OSError:
        holder = ""
    if holder not in ("", str(os.getpid())):
        return  # another process's lock: not ours to remove
    shutil.rmtree(workdir, ignore_errors=True)
    folder = workdir.parent
    while folder == top or top in folder.parents:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            return
        folder = folder.parent
