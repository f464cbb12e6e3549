"""CCER-01-002-V01, grid-connected offshore wind: eligible more than 30 km offshore or in water deeper
than 30 m, crediting period at most 10 years, PE = 0 and leakage ignored."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import model_validator

from mrv_engine.double_claim import Scheme
from mrv_engine.methodologies.base import Methodology, MethodologyParams, ProjectFacts
from mrv_engine.provenance import NonNegative
from mrv_engine.results import ParameterValue
from mrv_engine.technology import Technology

MIN_DISTANCE_KM = 30.0
MIN_DEPTH_M = 30.0
MAX_CREDITING_YEARS = 10


class Ccer01002Params(MethodologyParams):
    id: Literal["CCER-01-002"] = "CCER-01-002"
    distance_offshore_km: NonNegative | None = None
    water_depth_m: NonNegative | None = None

    @model_validator(mode="after")
    def _eligible(self) -> Ccer01002Params:
        far = self.distance_offshore_km is not None and self.distance_offshore_km.value > MIN_DISTANCE_KM
        deep = self.water_depth_m is not None and self.water_depth_m.value > MIN_DEPTH_M
        if not (far or deep):
            raise ValueError(f"CCER-01-002 needs a site more than {MIN_DISTANCE_KM:g} km offshore or in "
                             f"water deeper than {MIN_DEPTH_M:g} m (give distance_offshore_km or "
                             "water_depth_m)")
        return self


class Ccer01002(Methodology[Ccer01002Params]):
    id = "CCER-01-002"
    scheme = Scheme.CCER
    params_model = Ccer01002Params
    technologies = frozenset({Technology.OFFSHORE_WIND})

    def check_project(self, facts: ProjectFacts) -> None:
        super().check_project(facts)
        start = facts.crediting_start
        try:
            limit = start.replace(year=start.year + MAX_CREDITING_YEARS)
        except ValueError:  # 29 February
            limit = dt.date(start.year + MAX_CREDITING_YEARS, 3, 1)
        if facts.crediting_end >= limit:
            raise ValueError(f"CCER-01-002 allows a crediting period of at most {MAX_CREDITING_YEARS} years; "
                             f"{start} to {facts.crediting_end} is longer")

    def parameters(self) -> tuple[ParameterValue, ...]:
        sited = (("distance_offshore", self.params.distance_offshore_km, "km"),
                 ("water_depth", self.params.water_depth_m, "m"))
        return tuple(ParameterValue(name, value.value, unit, value.source)
                     for name, value, unit in sited if value is not None)
