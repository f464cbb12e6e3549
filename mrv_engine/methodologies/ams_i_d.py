"""CDM AMS-I.D, grid-connected renewable electricity generation (small scale): as ACM0002 greenfield,
for plants up to the Type I small-scale limit of 15 MW."""

from __future__ import annotations

from typing import Literal

from mrv_engine.double_claim import Scheme
from mrv_engine.methodologies.base import Methodology, MethodologyParams, ProjectFacts

SMALL_SCALE_LIMIT_MW = 15.0


class AmsIdParams(MethodologyParams):
    id: Literal["AMS-I.D"] = "AMS-I.D"


class AmsId(Methodology[AmsIdParams]):
    id = "AMS-I.D"
    scheme = Scheme.CDM
    params_model = AmsIdParams

    def check_project(self, facts: ProjectFacts) -> None:
        super().check_project(facts)
        if facts.capacity_mw > SMALL_SCALE_LIMIT_MW:
            raise ValueError(f"AMS-I.D is for up to {SMALL_SCALE_LIMIT_MW:g} MW; this plant has "
                             f"{facts.capacity_mw:g} MW (use ACM0002)")
