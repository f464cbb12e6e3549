"""CDM ACM0002, grid-connected electricity generation from renewable sources.

Greenfield: EG_PJ = EG_export − EG_import (the net generation). Capacity addition or retrofit:
EG_PJ = EG_facility − (EG_historical + σ_historical), the historical annual generation and its standard
deviation pro-rated to the period over a 365-day year (so a leap year's full period deducts slightly more,
the conservative side). EG_PJ is not clamped at zero: a shortfall shows as negative reductions and yields
no units.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import model_validator

from mrv_engine.double_claim import Scheme
from mrv_engine.methodologies.base import Methodology, MethodologyParams, PeriodInputs
from mrv_engine.provenance import NonNegative
from mrv_engine.results import ParameterValue
from mrv_engine.units import MS_PER_DAY, WH_PER_MWH, exact

YEAR_MS = 365 * MS_PER_DAY


class Acm0002Params(MethodologyParams):
    id: Literal["ACM0002"] = "ACM0002"
    variant: Literal["greenfield", "capacity_addition"] = "greenfield"
    eg_historical_mwh: NonNegative | None = None  # annual average before the addition or retrofit
    sigma_historical_mwh: NonNegative | None = None  # standard deviation of the annual generation

    @model_validator(mode="after")
    def _historical(self) -> Acm0002Params:
        given = [v is not None for v in (self.eg_historical_mwh, self.sigma_historical_mwh)]
        if self.variant == "capacity_addition" and not all(given):
            raise ValueError("a capacity addition or retrofit needs eg_historical_mwh and "
                             "sigma_historical_mwh")
        if self.variant == "greenfield" and any(given):
            raise ValueError("a greenfield plant has no historical generation")
        return self


class Acm0002(Methodology[Acm0002Params]):
    id = "ACM0002"
    scheme = Scheme.CDM
    params_model = Acm0002Params

    def _historical(self) -> tuple[NonNegative, NonNegative] | None:
        if self.params.eg_historical_mwh is None or self.params.sigma_historical_mwh is None:
            return None
        return self.params.eg_historical_mwh, self.params.sigma_historical_mwh

    def parameters(self) -> tuple[ParameterValue, ...]:
        historical = self._historical()
        if historical is None:
            return ()
        eg, sigma = historical
        return (ParameterValue("EG_historical", eg.value, "MWh/y", eg.source),
                ParameterValue("sigma_historical", sigma.value, "MWh/y", sigma.source))

    def project_generation(self, inputs: PeriodInputs) -> int:
        historical = self._historical()
        if historical is None:
            return inputs.generation.net_wh
        eg, sigma = historical
        annual_wh = (exact(eg.value) + exact(sigma.value)) * WH_PER_MWH
        return inputs.generation.net_wh - math.ceil(annual_wh * inputs.period.duration_ms / YEAR_MS)
