"""The methodology plugin interface: ER = BE − PE − LE, BE = EG_PJ × EF_grid.

A plugin is a class with an `id`, a pydantic parameter model (its section of the project configuration)
and `compute(inputs) -> PeriodResult`. Subclasses say how the project electricity EG_PJ follows from the
net generation and what the project emissions are; the base class applies the equations and the
rounding rule of `mrv_engine.units` the same way for all. Leakage is zero for every methodology here
(ACM0002, AMS-I.D and the CCER grid-connected methods ignore it).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar, final

from pydantic import BaseModel, ConfigDict

from mrv_engine.double_claim import Scheme
from mrv_engine.net_generation import NetGeneration
from mrv_engine.results import EnvelopeDigest, ParameterValue, PeriodResult
from mrv_engine.technology import Technology
from mrv_engine.timespan import Span
from mrv_engine.units import kg_down, kg_up, mwh


class MethodologyParams(BaseModel):
    """Base of a methodology's configuration section; `id` selects the plugin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str


@dataclass(frozen=True)
class ProjectFacts:
    """What eligibility rules look at."""

    technology: Technology
    capacity_mw: float
    crediting_start: dt.date
    crediting_end: dt.date  # inclusive


@dataclass(frozen=True)
class PeriodInputs:
    """Everything a methodology needs for one monitoring period."""

    project_id: str
    period: Span
    generation: NetGeneration
    grid_ef: tuple[ParameterValue, ...]  # EF_grid first, then what it was computed from
    envelopes: EnvelopeDigest
    fuel_consumption: Mapping[str, float] = field(default_factory=dict)  # monitored, per fuel id


P = TypeVar("P", bound=MethodologyParams)


class Methodology(ABC, Generic[P]):
    id: ClassVar[str]
    scheme: ClassVar[Scheme]  # the scheme whose units this methodology's reductions become
    params_model: ClassVar[type[MethodologyParams]]
    technologies: ClassVar[frozenset[Technology]] = frozenset(Technology)

    def __init__(self, params: P) -> None:
        self.params = params

    def check_project(self, facts: ProjectFacts) -> None:
        """Raise ValueError, saying why, if the project cannot use this methodology."""
        if facts.technology not in self.technologies:
            allowed = ", ".join(sorted(self.technologies))
            raise ValueError(f"{self.id} applies to {allowed}, not {facts.technology}")

    def parameters(self) -> tuple[ParameterValue, ...]:
        """Configured parameters the computation uses, with their provenance."""
        return ()

    def project_generation(self, inputs: PeriodInputs) -> int:
        """EG_PJ in Wh; for a greenfield plant the net electricity supplied to the grid."""
        return inputs.generation.net_wh

    def project_emissions(self, inputs: PeriodInputs) -> tuple[float, tuple[ParameterValue, ...]]:
        """PE in tCO2e and the monitored values it used; zero for wind and PV without fossil back-up."""
        return 0.0, ()

    @final
    def compute(self, inputs: PeriodInputs) -> PeriodResult:
        eg_pj_wh = self.project_generation(inputs)
        ef_grid = inputs.grid_ef[0]
        project_t, monitored = self.project_emissions(inputs)
        if project_t < 0:
            raise ValueError(f"{self.id}: project emissions cannot be negative ({project_t} t)")
        generation = inputs.generation
        return PeriodResult(
            project_id=inputs.project_id,
            methodology_id=self.id,
            period=inputs.period,
            export_wh=generation.export_wh,
            import_wh=generation.import_wh,
            net_generation_wh=generation.net_wh,
            eg_pj_wh=eg_pj_wh,
            baseline_kg=kg_down(mwh(eg_pj_wh) * ef_grid.value),
            project_kg=kg_up(project_t),
            leakage_kg=0,
            intervals_present=generation.intervals_present,
            intervals_expected=generation.intervals_expected,
            adjustments=generation.adjustments,
            flags=generation.flags,
            parameters=inputs.grid_ef + self.parameters() + monitored,
            meters=generation.meters,
            envelopes=inputs.envelopes,
        )
