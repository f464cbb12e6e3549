"""The grid emission factor of a project: a combined margin (CDM TOOL07) or an entry of a dataset.

EF_grid,CM = w_OM · EF_OM + w_BM · EF_BM. TOOL07's default weights for wind and solar projects in their
first crediting period are w_OM = 0.75, w_BM = 0.25 (every technology here is wind or solar; other
technologies would default to 0.5 / 0.5). For later crediting periods the weights must be configured:
they come from the registered design document, like EF_OM and EF_BM themselves.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mrv_engine.grid_factors import GridFactorTable
from mrv_engine.provenance import Fraction01, Positive
from mrv_engine.results import ParameterValue
from mrv_engine.technology import Technology
from mrv_engine.units import exact

UNIT = "tCO2/MWh"
_TOOL07_SOURCE = "CDM TOOL07 default weight for wind and solar projects, first crediting period"


class CombinedMargin(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["combined_margin"] = "combined_margin"
    ef_om: Positive = Field(description="operating margin emission factor, tCO2/MWh")
    ef_bm: Positive = Field(description="build margin emission factor, tCO2/MWh")
    w_om: Fraction01 | None = None
    w_bm: Fraction01 | None = None

    @model_validator(mode="after")
    def _weights(self) -> CombinedMargin:
        if (self.w_om is None) != (self.w_bm is None):
            raise ValueError("give both w_om and w_bm, or neither for the TOOL07 defaults")
        if self.w_om is not None and self.w_bm is not None and exact(self.w_om.value) + exact(
                self.w_bm.value) != 1:
            raise ValueError(f"w_om + w_bm must equal 1, got {self.w_om.value} + {self.w_bm.value}")
        return self

    def with_default_weights(self, technology: Technology, crediting_period_number: int) -> CombinedMargin:
        """These weights, or TOOL07's defaults where none are configured."""
        if self.w_om is not None:
            return self
        if crediting_period_number != 1:
            raise ValueError(f"configure w_om and w_bm for crediting period {crediting_period_number} of a "
                             f"{technology} project: TOOL07 defaults are used for the first period only")
        return self.model_copy(update={"w_om": Fraction01(value=0.75, source=_TOOL07_SOURCE),
                                       "w_bm": Fraction01(value=0.25, source=_TOOL07_SOURCE)})


class DatasetEntry(BaseModel):
    """An entry of the grid factor dataset (`mrv_engine/data/china_grid_ef.csv` by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["dataset"] = "dataset"
    year: int
    grid: str = Field(min_length=1, description="national, north, northeast, east, central, ...")
    column: str = Field(min_length=1, description="average, excl_market_non_fossil, fossil_only")


GridEmissionFactor = Annotated[CombinedMargin | DatasetEntry, Field(discriminator="kind")]


def resolve_grid_ef(ef: GridEmissionFactor, table: GridFactorTable) -> tuple[ParameterValue, ...]:
    """EF_grid first, then the values it was computed from, each with its provenance."""
    if isinstance(ef, DatasetEntry):
        factor = table.lookup(ef.year, ef.grid, ef.column)
        return (ParameterValue("EF_grid", factor.value, UNIT,
                               f"{table.origin} {ef.year}/{ef.grid}/{ef.column}: {factor.source}"),)
    if ef.w_om is None or ef.w_bm is None:
        raise ValueError("the combined margin has no weights: apply with_default_weights first")
    # In exact decimals, so that 0.75 · 0.8 + 0.25 · 0.4 reports as 0.7, not 0.7000000000000001.
    value = float(exact(ef.w_om.value) * exact(ef.ef_om.value) + exact(ef.w_bm.value) * exact(ef.ef_bm.value))
    return (ParameterValue("EF_grid", value, UNIT, "combined margin w_OM·EF_OM + w_BM·EF_BM"),
            ParameterValue("EF_OM", ef.ef_om.value, UNIT, ef.ef_om.source),
            ParameterValue("EF_BM", ef.ef_bm.value, UNIT, ef.ef_bm.source),
            ParameterValue("w_OM", ef.w_om.value, "1", ef.w_om.source),
            ParameterValue("w_BM", ef.w_bm.value, "1", ef.w_bm.source))
