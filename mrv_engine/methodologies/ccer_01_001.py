"""CCER-01-001-V01, grid-connected solar thermal: PE_y = Σ_i FC_i · NCV_i · CC_i · OF_i · 44/12 over the
auxiliary fossil fuels i. FC_i is monitored per period (period inputs); NCV, CC and OF are configured
with their sources."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mrv_engine.double_claim import Scheme
from mrv_engine.errors import MissingData
from mrv_engine.methodologies.base import Methodology, MethodologyParams, PeriodInputs
from mrv_engine.provenance import Fraction01, NonNegative, Positive
from mrv_engine.results import ParameterValue
from mrv_engine.technology import Technology
from mrv_engine.units import CO2_PER_C


class AuxiliaryFuel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    unit: str = Field(min_length=1, description="unit of FC, e.g. t or 1000 Nm3")
    ncv_gj_per_unit: Positive
    carbon_content_tc_per_gj: NonNegative
    oxidation_factor: Fraction01


class Ccer01001Params(MethodologyParams):
    id: Literal["CCER-01-001"] = "CCER-01-001"
    auxiliary_fuels: tuple[AuxiliaryFuel, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Ccer01001Params:
        ids = [fuel.id for fuel in self.auxiliary_fuels]
        if len(set(ids)) != len(ids):
            raise ValueError(f"auxiliary fuel ids must be unique: {ids}")
        return self


class Ccer01001(Methodology[Ccer01001Params]):
    id = "CCER-01-001"
    scheme = Scheme.CCER
    params_model = Ccer01001Params
    technologies = frozenset({Technology.SOLAR_THERMAL})

    def parameters(self) -> tuple[ParameterValue, ...]:
        return tuple(
            ParameterValue(f"{name}[{fuel.id}]", value.value, unit, value.source)
            for fuel in self.params.auxiliary_fuels
            for name, value, unit in (("NCV", fuel.ncv_gj_per_unit, f"GJ/{fuel.unit}"),
                                      ("CC", fuel.carbon_content_tc_per_gj, "tC/GJ"),
                                      ("OF", fuel.oxidation_factor, "1")))

    def project_emissions(self, inputs: PeriodInputs) -> tuple[float, tuple[ParameterValue, ...]]:
        configured = {fuel.id: fuel for fuel in self.params.auxiliary_fuels}
        unknown = sorted(set(inputs.fuel_consumption) - set(configured))
        if unknown:
            raise MissingData(f"fuel consumption reported for {', '.join(unknown)}, which has no NCV, CC "
                              "and OF in the configuration")
        total = 0.0
        monitored = []
        for fuel in self.params.auxiliary_fuels:
            if fuel.id not in inputs.fuel_consumption:
                raise MissingData(f"no consumption of auxiliary fuel {fuel.id} for the period; "
                                  "report 0 if none was used")
            consumed = inputs.fuel_consumption[fuel.id]
            if consumed < 0:
                raise ValueError(f"fuel consumption of {fuel.id} is negative: {consumed}")
            total += (consumed * fuel.ncv_gj_per_unit.value * fuel.carbon_content_tc_per_gj.value
                      * fuel.oxidation_factor.value * float(CO2_PER_C))
            monitored.append(ParameterValue(f"FC[{fuel.id}]", consumed, fuel.unit,
                                            "monitored for the period"))
        return total, tuple(monitored)
