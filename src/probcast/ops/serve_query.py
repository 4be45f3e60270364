"""The request and error bodies of ``probcast serve`` (pydantic models; the OpenAPI schema).

:func:`query_model` builds the body of ``POST /forecast`` with the server's limit on the
number of stations or points, so the schema states it (``maxItems``) and a longer list is a
``422`` naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_MEMBERS = 200

StationId = Annotated[str, Field(min_length=1, max_length=100)]
LeadTime = Annotated[float, Field(ge=0.0, le=100_000.0)]
Level = Annotated[float, Field(ge=1e-6, le=1.0 - 1e-6)]  # exact enough in float32
Threshold = Annotated[float, Field(ge=-1e9, le=1e9)]
Thresholds = Annotated[list[Threshold], Field(max_length=100)]
Variable = Annotated[str, Field(min_length=1, max_length=40)]
Units = Annotated[str, Field(min_length=1, max_length=40)]


class Point(BaseModel):
    """A place to forecast for: answered by the nearest station or grid point of the cycle."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    latitude: float = Field(ge=-90.0, le=90.0, description="degrees north")
    longitude: float = Field(ge=-180.0, le=360.0, description="degrees east")


class Problem(BaseModel):
    """Every error: ``detail`` says what is wrong (a list of field errors for a ``422``)."""

    detail: str | list[dict[str, Any]]


class ForecastReply(BaseModel):
    """The JSON answer of ``POST /forecast``."""

    cycle: str
    model_fingerprint: str
    units: dict[str, str] = Field(description="units of every target's values in the rows")
    families: dict[str, str] = Field(description="family of the parameter columns per variable")
    periods: dict[str, float] = Field(
        default_factory=dict,
        description="hours before the valid time that tp (sum), tmax and tmin (extremes) cover",
    )
    rows: list[dict[str, Any]] = Field(
        description="one per station (or point) and lead time: keys, statics, "
        "<var>_q<level>, <var>_p_gt_<t>, <var>_mNNN; points add point and distance_km"
    )


class ReadyReply(BaseModel):
    """The answer of ``GET /ready``."""

    status: str
    pipeline: str
    model_fingerprint: str
    cycles: int


def query_model(max_points: int) -> type[BaseModel]:
    """The body of ``POST /forecast`` allowing at most ``max_points`` stations or points."""

    class ForecastQuery(BaseModel):
        """A forecast for stations (by id) or points (lat/lon) of one cycle.

        Give ``stations`` or ``points`` (not both); neither means every station of a
        station-table cycle.
        """

        model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

        cycle: str = Field(min_length=1, max_length=40, examples=["2026-11-29T00Z"])
        stations: list[StationId] | None = Field(default=None, min_length=1, max_length=max_points)
        points: list[Point] | None = Field(default=None, min_length=1, max_length=max_points)
        lead_times: list[LeadTime] | None = Field(default=None, min_length=1, max_length=1000)
        quantiles: list[Level] = Field(default_factory=lambda: [0.1, 0.5, 0.9], max_length=99)
        thresholds: dict[Variable, Thresholds] = Field(default_factory=dict, max_length=50)
        members: int = Field(default=0, ge=0, le=MAX_MEMBERS)
        params: bool = Field(default=False, description="add the <var>_<param> columns")
        units: dict[Variable, Units] = Field(
            default_factory=dict,
            max_length=50,
            description="{var: units} of thresholds and answers (t2m: degC); else canonical",
        )

        @model_validator(mode="after")
        def _stations_or_points(self) -> ForecastQuery:
            if self.stations is not None and self.points is not None:
                raise ValueError("give stations or points, not both")
            return self

    return ForecastQuery


def check_variables(thresholds: Any, units: Any, targets: list[str]) -> None:
    """A 422 for thresholds or units of variables the model does not predict.

    The client's mistake, not the cycle's: before, the runner refused them as the input's
    problem, a 503 that also fed the serve-error alert. Units are checked by the products'
    own rule (:func:`probcast.products.units.check_units_for`).
    """
    from probcast.products.units import check_thresholds_for, check_units_for

    try:
        check_thresholds_for(targets, thresholds)
        check_units_for(targets, units)
    except ValueError as err:
        raise HTTPException(422, str(err).removeprefix("--")) from None


def parse_units_or_400(units: Any) -> dict[str, str]:
    """The query's ``{var: units}`` in canonical names, or a 400 naming what is wrong."""
    from probcast.units import UnitError, parse_units

    try:
        return parse_units(units)
    except UnitError as err:
        raise HTTPException(400, str(err)) from err
