"""The checks of a pipeline file's values, at load (:func:`probcast.ops.pipeline.load`).

Every value is checked when the file is read, not when a cycle first uses it: an error
names the file, the key, what was given and what is expected (``ops.yaml: every_hours:
expected a whole number >= 1, got 'abc'``), and the commands exit with status 2. The
``products`` block is checked by building the :class:`~probcast.predict.request.PredictRequest`
each cycle will run (its own checks), after the types a YAML file can get wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probcast.ops.pipeline import Destination, PipelineError

SAMPLE_CYCLE = datetime(2026, 11, 29, tzinfo=UTC)
"""The cycle templates are filled with when checked."""
_BARE_CYCLE = re.compile(r"(?<!\{)\{cycle(?:![rsa])?:?\}")
COMPLETE_KEYS = frozenset({"rule", "settle_seconds", "suffix"})
METRICS_KEYS = frozenset({"file", "pushgateway"})
DESTINATION_KEYS = frozenset({"url", "storage_options"})
_WHOLE = ("members", "batch_size", "quantile_members", "seed", "tile")
_TEXT = ("combine", "scheduler", "template")
_LISTS = ("quantiles", "percentiles")


def kind(value: Any) -> str:
    """The YAML kind of ``value`` in words (for messages)."""
    names = {bool: "a boolean", str: "a string", int: "a number", float: "a number"}
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return names.get(type(value), type(value).__name__)


def whole(value: Any, where: str, low: int = 0) -> int:
    """``value`` as an integer ``>= low`` (a YAML integer, or text of one)."""
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or number < low:
        raise PipelineError(f"{where}: expected a whole number >= {low}, got {value!r}")
    return number


def real(value: Any, where: str, low: float | None = 0.0, *, above: bool = False) -> float:
    """``value`` as a finite number ``>= low`` (``> low`` with ``above``; any: ``None``)."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    bound = "" if low is None else f" {'>' if above else '>='} {low:g}"
    too_low = low is not None and (number < low or (above and number == low))
    if not math.isfinite(number) or too_low:
        raise PipelineError(f"{where}: expected a finite number{bound}, got {value!r}")
    return number


def text(value: Any, where: str) -> str:
    """``value`` as a non-empty string (a YAML string or number)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value):
        raise PipelineError(f"{where}: expected a non-empty string, got {kind(value)} {value!r}")
    return str(value)


def block(value: Any, where: str, known: frozenset[str] | None = None) -> dict[str, Any]:
    """A mapping whose keys are all in ``known`` (any: ``None``; no value: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineError(f"{where}: expected a mapping of keys, got {kind(value)} {value!r}")
    unknown = set(map(str, value)) - known if known is not None else set()
    if unknown and known is not None:
        raise PipelineError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return {str(k): v for k, v in value.items()}


def filled(template: str, where: str, **fields: Any) -> str:
    """``template`` filled with a sample cycle (and ``fields``): a bad placeholder is named.

    A ``{cycle}`` without a date format is refused: it would name files after the
    datetime's ``str`` (``2021-01-21 00:00:00+00:00``), which no NWP feed writes.
    """
    bare = _BARE_CYCLE.search(template)
    if bare:
        raise PipelineError(
            f"{where}: {template!r}: {bare.group()} has no date format, which gives names like "
            f"'{SAMPLE_CYCLE}'; write {{cycle:FORMAT}}, e.g. {{cycle:%Y%m%d%H}}"
        )
    try:
        return template.format(cycle=SAMPLE_CYCLE, **fields)
    except (KeyError, IndexError, ValueError, AttributeError) as err:
        known = ", ".join("{" + k + "}" for k in ("cycle:FORMAT", *fields))
        raise PipelineError(
            f"{where}: {template!r} cannot be filled in ({type(err).__name__}: {err}); "
            f"the placeholders are {known}"
        ) from None


def complete(value: Any, name: str) -> tuple[str, float, str]:
    """``rule``, ``settle_seconds`` and ``suffix`` of the ``complete:`` block."""
    data = block(value, f"{name}: complete", COMPLETE_KEYS)
    rule = data.get("rule", "stable")
    if rule not in ("stable", "marker"):
        raise PipelineError(f"{name}: complete.rule: expected 'stable' or 'marker', got {rule!r}")
    settle = real(data.get("settle_seconds", 2.0), f"{name}: complete.settle_seconds")
    suffix = text(data.get("suffix", ".done"), f"{name}: complete.suffix")
    return rule, settle, suffix


def destination(item: Any, base: Path, where: str) -> Destination:
    """A folder/URL, or ``{url: ..., storage_options: {...}}``."""
    if isinstance(item, str) and item:
        item = {"url": item}
    if not isinstance(item, Mapping):
        raise PipelineError(
            f"{where}: expected a folder/URL or {{url: ..., storage_options: ...}}, "
            f"got {kind(item)} {item!r}"
        )
    data = block(item, where, DESTINATION_KEYS)
    url = text(data.get("url"), f"{where}.url")
    options = block(data.get("storage_options"), f"{where}.storage_options")
    if "://" not in url:
        path = Path(url).expanduser()
        url = str(path if path.is_absolute() else base / path)
    return Destination(url, options)


def _numbers(value: Any, where: str, empty: bool = False) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not (value or empty):
        what = "a list" if empty else "a non-empty list"
        raise PipelineError(f"{where}: expected {what} of numbers, got {value!r}")
    return tuple(real(v, f"{where}[{i}]", None) for i, v in enumerate(value))


def _typed(products: dict[str, Any], base: Path, name: str) -> dict[str, Any]:
    """The request fields of ``products`` with the types a request takes."""
    out: dict[str, Any] = {}
    for key, value in products.items():
        where = f"{name}: products.{key}"
        if key in _WHOLE:
            out[key] = whole(value, where, 1 if key in ("batch_size", "tile") else 0)
        elif key in _LISTS:
            none = value is None and key == "percentiles"
            out[key] = None if none else _numbers(value, where, empty=True)
        elif key == "thresholds":
            table = block(value, where)
            out[key] = (
                None
                if value is None
                else {var: _numbers(ts, f"{where}.{var}") for var, ts in table.items()}
            )
        elif key == "params":
            if not isinstance(value, bool):
                raise PipelineError(f"{where}: expected true or false, got {value!r}")
            out[key] = value
        elif key == "inflevel":
            out[key] = real(value, where)
        elif key in _TEXT:
            out[key] = None if value is None and key != "combine" else text(value, where)
        else:  # pragma: no cover - REQUEST_FIELDS and the branches above agree
            out[key] = value
    if out.get("template") is not None:  # past forecasts + observations
        path = Path(out["template"]).expanduser()
        out["template"] = str(path if path.is_absolute() else base / path)
    return out


def products(
    value: Any, base: Path, input_: str, name: str, fields: frozenset[str]
) -> tuple[str, dict[str, Any]]:
    """The ``products:`` block: the output template and the request fields (checked).

    The request each cycle will run is built once here, so its own checks
    (:class:`~probcast.predict.request.PredictRequest`) apply at load.
    """
    from probcast.predict.request import PredictRequest, is_grid
    from probcast.schema import PREDICTION_SUFFIXES as TABLE_SUFFIXES

    data = block(value, f"{name}: products")
    unknown = set(data) - fields - {"output"}
    if unknown:
        raise PipelineError(
            f"{name}: products: unknown fields {sorted(unknown)}; known: output, "
            + ", ".join(sorted(fields))
        )
    gridded = is_grid(filled(input_, f"{name}: input", lead=0))
    default = "pred_{cycle:%Y%m%d%H}" + (".nc" if gridded else ".parquet")
    output = text(data.pop("output", default), f"{name}: products.output")
    sample = filled(output, f"{name}: products.output")
    request = _typed(data, base, name)
    suffixes: tuple[str, ...] = TABLE_SUFFIXES
    if gridded:  # (grid_output imports the products' builders: only for a grid)
        from probcast.predict.grid_output import SUFFIXES

        suffixes = SUFFIXES
    if Path(sample).suffix.lower() not in suffixes:
        what = "a grid input's products" if gridded else "a station table's predictions"
        raise PipelineError(
            f"{name}: products.output: {what} are written to a file ending in "
            f"{', '.join(suffixes)}, got {output!r}"
        )
    try:
        PredictRequest(model="model", input=input_, output=sample, **request)
    except (ValueError, TypeError) as err:
        raise PipelineError(f"{name}: products: {err}") from None
    return output, request


def state_url(url: str, where: str) -> str:
    """``url`` if SQLAlchemy can open a database of its kind; else :class:`PipelineError`."""
    from sqlalchemy.engine import make_url

    from probcast.model.integrity import redact

    example = "sqlite:///ops.state.sqlite or postgresql+psycopg://user@host/db"
    try:
        make_url(url).get_dialect()
    except Exception as err:  # ArgumentError (not a URL), NoSuchModuleError (unknown kind)
        cause = str(err).split("\n")[0]
        raise PipelineError(
            f"{where}: not a state database URL: {redact(repr(url))} ({redact(cause)}); "
            f"expected e.g. {example}"
        ) from None
    return url


def workdir_problem(path: Path) -> str:
    """Why ``path`` is not a trained model's work directory (``""``: it may be one)."""
    if not path.exists():
        return f"{path} does not exist (expected the work directory of a trained model)"
    if not path.is_dir():
        return f"{path} is a file, not the work directory of a trained model"
    if not (path / "config.json").is_file() and not (path / "COMPLETE.json").is_file():
        return f"{path} is not the work directory of a trained model (no config.json in it)"
    return ""


def model(pipe: Any, where: str) -> None:
    """A workdir ``model:`` that does not exist (or is no model) is refused."""
    if pipe.registry is None:
        why = workdir_problem(Path(pipe.model))
        if why:
            raise PipelineError(f"{where}: model: {why}")


def blocks(pipe: Any, name: str) -> None:
    """The ``broker:``, ``schedule:`` and ``metrics:`` blocks, checked by their modules.

    A ``broker:`` block without ``url`` is accepted here (``probcast consume --url``).
    """
    import dataclasses

    named = dataclasses.replace(pipe, name=name)  # the messages name the file
    if pipe.broker:
        from probcast.ops.broker import broker_config

        broker_config(named, url=None if pipe.broker.get("url") else "redis://placeholder")
    if pipe.schedule:
        from probcast.ops.schedule import parse_schedule

        parse_schedule(named)
    for key, value in block(pipe.metrics, f"{name}: metrics", METRICS_KEYS).items():
        text(value, f"{name}: metrics.{key}")


def monitor(data: Mapping[str, Any], name: str) -> None:
    """The ``monitor:`` block, checked by the parser ``probcast monitor`` reads it with.

    The parser (:func:`probcast.configs._monitor.parse_config`) imports only the standard
    library and PyYAML, so loading a pipeline stays fast; the thresholds are not kept.

    Raises:
        PipelineError: An unknown key or a bad value, e.g. ``ops.yaml: monitor.drift.psi:
            expected a number > 0, got 0``.
    """
    if data.get("monitor") is None:
        return
    from probcast.configs._monitor import MonitorConfigError, parse_config

    try:
        parse_config(data["monitor"], name)
    except MonitorConfigError as err:
        raise PipelineError(str(err)) from None


def raw_block(data: Mapping[str, Any], key: str, name: str) -> dict[str, Any]:
    """The mapping under ``key`` (checked by the module that reads it; none: empty)."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineError(f"{name}: {key} must be a mapping of keys, got {value!r}")
    return {str(k): v for k, v in value.items()}


def checked(data: Mapping[str, Any], key: str, base: Path, name: str) -> dict[str, Any]:
    """The ``retrain:`` or ``nwp:`` block, checked by the module that uses it.

    ``retrain:``: its training config is loaded and its overrides applied (a bad one is a bad
    pipeline file, not a failed retraining).
    """
    value = raw_block(data, key, name)
    if key == "nwp":
        from probcast.ops.upgrade import keys_of

        keys_of(value, name)
    elif value:
        from probcast.ops.retrain_spec import check_config, parse_retrain

        check_config(parse_retrain(value, base, name), name)
    return value


def leads(data: Mapping[str, Any], input_: str, name: str) -> dict[str, Any]:
    """``leads`` and ``partial`` of an input with one file per lead (``{lead}``)."""
    from probcast.ops.leadfiles import check_leads
    from probcast.ops.partial import parse_policy

    policy = raw_block(data, "partial", name)
    found = check_leads(data.get("leads"), bool(policy), input_, name)
    if found:
        parse_policy(policy, name)
    return {"leads": found, "partial": policy} if found else {}
