"""The pipeline file: which model, which input per cycle, which products, where to publish.

A YAML file (reference: ``docs/operations.md``)::

    name: stations                      # default: the file's stem
    model: runs/mine                    # workdir of a trained model, or a registered one:
    # model: {registry: stations, alias: champion}   (probcast.ops.registry)
    input: inputs/{cycle:%Y%m%d%H}.parquet   # lead files: .../f{lead:03d}.parquet + leads:
    partial: {mode: available}          # lead files: all | available | wait (probcast.ops.partial)
    complete: {rule: stable, settle_seconds: 2}    # or {rule: marker, suffix: .done}
    every_hours: 24                     # cycle spacing of --from/--to and of watch
    products:
      output: pred_{cycle:%Y%m%d%H}.parquet        # grids: NAME.nc or NAME.zarr
      members: 10
      quantiles: [0.1, 0.5, 0.9]
      thresholds: {tp: [0.1, 1.0]}
    destinations:
      - published                       # a folder
      - {url: "s3://bucket/forecasts", storage_options: {anon: false}}
    layout: "{cycle:%Y%m%d%H}/{name}"
    work: .ops-work                     # predictions before publishing, manifests:
                                        # <work>/<name>/<YYYYMMDDHH>/, one folder per pipeline
    state: sqlite:///ops.state.sqlite   # or postgresql+psycopg://user@host/db
    lease_seconds: 900
    broker: {url: "redis://127.0.0.1:6379/0", stream: probcast-cycles}   # probcast consume
    schedule: {cron: "30 5 * * *", delay_minutes: 330}                 # probcast schedule
    metrics: {file: /var/lib/node_exporter/probcast.prom}              # or pushgateway: URL
    retrain: {config: default, table: tables/all.parquet, margin: 0.02}  # probcast retrain
    nwp: {keys: [model_version]}        # input metadata compared between cycles (upgrades)
    monitor: {drift: {psi: 0.3}}        # probcast monitor's thresholds (checked at load)

Relative paths are relative to the pipeline file's folder. Cycles are UTC datetimes,
written ``2026-11-29T00Z`` (also accepted: ``2026112900``, ``2026-11-29T00:00Z``, ``2026-11-29``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped]

CYCLE_FORMAT = "%Y-%m-%dT%HZ"
REQUEST_FIELDS = frozenset(
    {
        "members",
        "template",
        "quantiles",
        "percentiles",
        "thresholds",
        "params",
        "combine",
        "batch_size",
        "quantile_members",
        "seed",
        "tile",
        "scheduler",
        "inflevel",
    }
)
"""The :class:`~probcast.PredictRequest` fields a pipeline may set under ``products``."""
_TOP_KEYS = frozenset(
    {
        "name",
        "model",
        "input",
        "complete",
        "every_hours",
        "products",
        "destinations",
        "layout",
        "work",
        "state",
        "lease_seconds",
        "broker",
        "schedule",
        "metrics",
        "monitor",
        "retrain",
        "nwp",
        "leads",
        "partial",
    }
)
if TYPE_CHECKING:
    from probcast.ops.registry import RegistrySpec

_PLACEHOLDER = re.compile(r"\{cycle(?::([^}]*))?\}")
_LEAD = re.compile(r"\{lead(?::[^}]*)?\}")


class PipelineError(ValueError):
    """A pipeline file or cycle that cannot be used (the message says what and where)."""


MIN_YEAR, MAX_YEAR = 1900, 2200
"""Years a cycle may have (NWP archives start in the 1940s; four-digit names either way)."""


def parse_cycle(text: str | datetime) -> datetime:
    """``2026-11-29T00Z`` (or ``2026112900``, ``2026-11-29T00:00Z``) -> aware UTC datetime."""
    if isinstance(text, datetime):
        value = text
    else:
        raw = text.strip()
        try:
            if re.fullmatch(r"\d{10}", raw):
                value = datetime.strptime(raw, "%Y%m%d%H")
            else:
                value = datetime.fromisoformat(raw.removesuffix("Z").removesuffix("z"))
        except ValueError as err:
            raise PipelineError(
                f"cycle must look like 2026-11-29T00Z or 2026112900, got {text!r}"
            ) from err
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as err:  # an offset past year 1 or 9999
        raise PipelineError(f"cycle {text!r} is outside the years 1-9999 in UTC") from err
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise PipelineError(f"cycle {text!r}: the year must lie in {MIN_YEAR}-{MAX_YEAR}")
    if value.minute or value.second or value.microsecond:
        raise PipelineError(f"a cycle is a whole hour, got {text!r}")
    return value


def cycle_id(cycle: datetime) -> str:
    """The cycle's name in the state store and in logs: ``2026-11-29T00Z``."""
    return cycle.strftime(CYCLE_FORMAT)


def cycle_range(start: datetime, stop: datetime, every_hours: int) -> list[datetime]:
    """Cycles from ``start`` to ``stop`` (both included) every ``every_hours`` hours."""
    if stop < start:
        raise PipelineError(f"--to ({cycle_id(stop)}) is before --from ({cycle_id(start)})")
    out, step, cur = [], timedelta(hours=every_hours), start
    while cur <= stop:
        out.append(cur)
        cur += step
    return out


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where products are published: a local folder or an fsspec URL."""

    url: str
    storage_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def remote(self) -> bool:
        """Whether the destination is reached through fsspec (has a protocol)."""
        return "://" in self.url and not self.url.startswith("file://")


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A parsed pipeline file (paths resolved against its folder)."""

    name: str
    root: Path
    model: Path
    input: str
    output: str
    request: Mapping[str, Any]
    destinations: tuple[Destination, ...]
    layout: str = "{cycle:%Y%m%d%H}/{name}"
    work: Path = Path(".ops-work")
    state: str = ""
    complete_rule: str = "stable"
    settle_seconds: float = 2.0
    marker_suffix: str = ".done"
    every_hours: int = 24
    lease_seconds: float = 900.0
    broker: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The raw ``broker:`` block (parsed by :mod:`probcast.ops.broker`)."""
    schedule: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The raw ``schedule:`` block (parsed by :mod:`probcast.ops.schedule`)."""
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The raw ``metrics:`` block: ``file`` and/or ``pushgateway``
    (:mod:`probcast.ops.metrics_export`)."""
    registry: RegistrySpec | None = None
    """The registered model when ``model`` is ``{registry: NAME, ...}``: each cycle resolves
    its alias (:mod:`probcast.ops.registry`); ``model`` is then the alias's link."""
    retrain: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The raw ``retrain:`` block (parsed by :mod:`probcast.ops.retrain`)."""
    nwp: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The raw ``nwp:`` block (parsed by :mod:`probcast.ops.upgrade`)."""
    leads: tuple[int, ...] = ()
    """Lead times (hours) of an input with one file per lead (``{lead}`` in ``input``)."""
    partial: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The raw ``partial:`` block (parsed by :mod:`probcast.ops.partial`)."""

    def input_path(self, cycle: datetime) -> Path:
        """The input file of ``cycle`` (lead files: their union, written by ``acquire``)."""
        if self.leads:
            return self.work_dir(cycle) / ("input" + Path(self.input).suffix.lower())
        return self.root / self.input.format(cycle=cycle)

    def lead_path(self, cycle: datetime, lead: int) -> Path:
        """The input file of one lead time of ``cycle`` (``{lead}`` in the template)."""
        return self.root / self.input.format(cycle=cycle, lead=lead)

    def marker_path(self, cycle: datetime) -> Path:
        """The completeness marker of ``cycle``'s input (rule ``marker``)."""
        path = self.input_path(cycle)
        return path.with_name(path.name + self.marker_suffix)

    def work_dir(self, cycle: datetime) -> Path:
        """The cycle's folder for predictions and the manifest: ``<work>/<name>/<YYYYMMDDHH>``.

        The pipeline's name is part of it, so pipelines sharing a folder (and ``work``) never
        share work files (a champion and a shadow of the same cycle).
        """
        return self.work / work_folder_name(self.name) / cycle.strftime("%Y%m%d%H")

    def output_path(self, cycle: datetime) -> Path:
        """Where the predict step writes (inside the cycle's work folder)."""
        return self.work_dir(cycle) / self.output.format(cycle=cycle)

    def input_template(self) -> str:
        """The input template as an absolute path."""
        if Path(self.input).is_absolute():
            return self.input
        return f"{self.root}/{self.input}"

    def input_cycle(self, path: str | Path) -> datetime | None:
        """The cycle of an input path matching the template, or ``None``."""
        match = _template_regex(self.input_template()).fullmatch(str(path))
        if not match:
            return None
        try:
            return parse_cycle(datetime.strptime(match.group("c"), _cycle_format(self.input)))
        except (ValueError, PipelineError):
            return None

    def input_glob(self) -> str:
        """An absolute glob pattern matching every cycle's input (every lead file)."""
        return _LEAD.sub("*", _PLACEHOLDER.sub("*", self.input_template()))


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def work_folder_name(name: str) -> str:
    """The pipeline's folder under ``work``: its name when safe as a folder name.

    Another name (``/``, spaces, a leading dot, over 100 characters, ...) gives its safe
    characters and a hash of the whole name, so two names never share a folder.
    """
    if _SAFE_NAME.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "pipeline"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _cycle_format(template: str) -> str:
    found = _PLACEHOLDER.findall(template)
    return found[0] or CYCLE_FORMAT


def _template_regex(template: str) -> re.Pattern[str]:
    before, _, after = _PLACEHOLDER.split(template, maxsplit=1)

    def escape(text: str) -> str:  # a {lead} part matches any name part
        return r"[^/]+?".join(re.escape(p) for p in _LEAD.split(text))

    return re.compile(escape(before) + r"(?P<c>[^/]+?)" + escape(after))


def _resolve(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def from_dict(data: Mapping[str, Any], root: str | Path, name: str = "pipeline") -> Pipeline:
    """Build a :class:`Pipeline` from parsed YAML (``root``: folder of relative paths).

    Every key and value is checked (:mod:`probcast.ops.pipeline_check`); a workdir
    ``model`` is not looked for (:func:`load` with ``require_model``).
    """
    from probcast.ops import pipeline_check as chk

    base = Path(root).resolve()
    if not isinstance(data, Mapping):
        raise PipelineError(
            f"{name}: a pipeline file is a mapping of keys (model: ..., input: ...), "
            f"got {chk.kind(data)}"
        )
    unknown = set(map(str, data)) - _TOP_KEYS
    if unknown:
        raise PipelineError(f"{name}: unknown keys {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    for key in ("model", "input", "products", "destinations"):
        if data.get(key) is None or data.get(key) in ("", [], {}):
            raise PipelineError(f"{name}: {key!r} is required")
    input_ = chk.text(data["input"], f"{name}: input")
    if len(_PLACEHOLDER.findall(input_)) != 1:
        raise PipelineError(f"{name}: input must contain {{cycle:FORMAT}} once, got {input_!r}")
    if not _LEAD.search(input_):
        chk.filled(input_, f"{name}: input")
    leads = chk.leads(data, input_, name)  # (first: a lead-file input is a station table)
    output, request = chk.products(data["products"], base, input_, name, REQUEST_FIELDS)
    dests = data["destinations"]
    if not isinstance(dests, list):
        dests = [dests]
    rule, settle, suffix = chk.complete(data.get("complete"), name)
    stem = Path(name).stem
    state = str(data.get("state") or f"sqlite:///{base / (stem + '.state.sqlite')}")
    if state.startswith("sqlite:///") and not state.startswith("sqlite:////"):
        state = f"sqlite:///{_resolve(base, state.removeprefix('sqlite:///'))}"
    registry, model = _model(data["model"], base, name)
    layout = chk.text(data.get("layout", Pipeline.layout), f"{name}: layout")
    chk.filled(layout, f"{name}: layout", name="pred.parquet")
    pipe = Pipeline(
        name=chk.text(data.get("name") or stem, f"{name}: name"),
        root=base,
        model=model,
        input=input_,
        output=output,
        request=request,
        destinations=tuple(
            chk.destination(d, base, f"{name}: destinations[{i}]") for i, d in enumerate(dests)
        ),
        layout=layout,
        work=_resolve(base, chk.text(data.get("work", str(Pipeline.work)), f"{name}: work")),
        state=chk.state_url(state, f"{name}: state"),
        complete_rule=rule,
        settle_seconds=settle,
        marker_suffix=suffix,
        every_hours=chk.whole(data.get("every_hours", 24), f"{name}: every_hours", 1),
        lease_seconds=chk.real(
            data.get("lease_seconds", Pipeline.lease_seconds), f"{name}: lease_seconds", above=True
        ),
        broker=chk.raw_block(data, "broker", name),
        schedule=chk.raw_block(data, "schedule", name),
        metrics=chk.raw_block(data, "metrics", name),
        registry=registry,
        retrain=chk.checked(data, "retrain", base, name),
        nwp=chk.checked(data, "nwp", base, name),
        **leads,
    )
    chk.blocks(pipe, name)
    chk.monitor(data, name)
    return pipe


def _model(value: Any, base: Path, name: str) -> tuple[RegistrySpec | None, Path]:
    """A workdir, or a registered model (and the link to its alias's version)."""
    if not isinstance(value, Mapping):
        from probcast.ops.pipeline_check import text

        return None, _resolve(base, text(value, f"{name}: model"))
    from probcast.ops.registry import RegistryError, parse_model_block

    try:
        spec = parse_model_block(value, base, name)
    except RegistryError as err:
        raise PipelineError(str(err)) from None
    return spec, spec.link()


def load(path: str | Path, *, require_model: bool = False) -> Pipeline:
    """Read and check a pipeline file (every key and value; :class:`PipelineError` if bad).

    ``require_model``: a workdir ``model`` must exist and be a model's work directory (the
    commands that run cycles or serve; others, ``run --status``, need no model).
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"pipeline file not found: {file}") from None
    except IsADirectoryError:
        raise PipelineError(f"{file}: is a folder; expected a pipeline YAML file") from None
    except OSError as err:
        raise PipelineError(f"{file}: cannot read the pipeline file: {err.strerror}") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise PipelineError(
            f"{file}: not a text (UTF-8) file (byte {err.start} is "
            f"{raw[err.start : err.start + 1]!r}); expected a pipeline YAML file"
        ) from None
    except yaml.YAMLError as err:
        raise PipelineError(f"{file}: not valid YAML: {err}") from None
    pipe = from_dict(data, file.resolve().parent, file.name)
    if require_model:
        from probcast.ops.pipeline_check import model

        model(pipe, file.name)
    return pipe
