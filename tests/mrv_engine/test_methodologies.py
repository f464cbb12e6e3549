"""Methodology plugins by hand: ER = BE − PE − LE with BE = EG_PJ × EF_grid, and the rounding rule."""

from __future__ import annotations

import datetime as dt

import pytest

from mrv_engine import METHODOLOGIES, MissingData, methodology_for
from mrv_engine.methodologies import Acm0002Params, Ccer01001Params, MethodologyParams, PeriodInputs
from mrv_engine.net_generation import NetGeneration
from mrv_engine.results import EnvelopeDigest, ParameterValue
from mrv_engine.timespan import Span
from tests.mrv_engine.builders import DAY, T0

EF_07 = (ParameterValue("EF_grid", 0.7, "tCO2/MWh", "combined margin"),)


def _inputs(net_wh: int, *, days: int = 1, fuel: dict[str, float] | None = None,
            grid_ef: tuple[ParameterValue, ...] = EF_07) -> PeriodInputs:
    generation = NetGeneration(net_wh, 0, net_wh, (), (), (), 96, 96)
    return PeriodInputs("p1", Span(T0, T0 + days * DAY), generation, grid_ef, EnvelopeDigest.of([]),
                        fuel or {})


def test_registry_by_id() -> None:
    assert sorted(METHODOLOGIES) == ["ACM0002", "AMS-I.D", "CCER-01-001", "CCER-01-002"]
    assert methodology_for(Acm0002Params()).id == "ACM0002"
    with pytest.raises(ValueError, match="unknown methodology"):
        methodology_for(MethodologyParams(id="ACM9999"))


def test_greenfield_baseline_is_net_generation_times_the_combined_margin() -> None:
    # 1000 MWh × 0.7 tCO2/MWh = 700 t, with no float noise in the report.
    result = methodology_for(Acm0002Params()).compute(_inputs(1_000_000_000))
    assert (result.eg_pj_wh, result.baseline_kg, result.project_kg, result.leakage_kg) == (
        1_000_000_000, 700_000, 0, 0)
    assert result.reductions_kg == 700_000 and result.issuable_units == 700


def test_reductions_round_down_to_the_kilogram_and_units_to_the_tonne() -> None:
    # 1.719720 MWh × 0.7 = 1.203804 t: 1203 kg, "1.203" t, 1 unit
    result = methodology_for(Acm0002Params()).compute(_inputs(1_719_720))
    assert result.baseline_kg == 1_203
    assert result.to_dict()["emissions"]["reductions_tco2e"] == "1.203"
    assert result.issuable_units == 1


def test_negative_net_generation_is_reported_not_clamped() -> None:
    result = methodology_for(Acm0002Params()).compute(_inputs(-96_000))
    assert result.baseline_kg == -68  # -0.0672 t rounded down
    assert result.issuable_units == 0


def test_capacity_addition_subtracts_historical_generation_pro_rata() -> None:
    params = Acm0002Params.model_validate({
        "variant": "capacity_addition",
        "eg_historical_mwh": {"value": 8_760, "source": "PDD §B.6.1, 2019-2023 average"},
        "sigma_historical_mwh": {"value": 365, "source": "PDD §B.6.1"}})
    plugin = methodology_for(params)
    # (8,760 + 365) MWh/y over 1 of 365 days = 25 MWh; EG_PJ = 40 - 25 = 15 MWh; BE = 15 × 0.7 = 10.5 t
    result = plugin.compute(_inputs(40_000_000))
    assert (result.net_generation_wh, result.eg_pj_wh, result.baseline_kg) == (40_000_000, 15_000_000, 10_500)
    assert [(p.name, p.value) for p in result.parameters][1:] == [
        ("EG_historical", 8760.0), ("sigma_historical", 365.0)]
    # a short year falls below the historical level: negative EG_PJ, no units
    assert plugin.compute(_inputs(20_000_000)).issuable_units == 0


def test_solar_thermal_project_emissions_from_auxiliary_fuel() -> None:
    params = Ccer01001Params.model_validate({"id": "CCER-01-001", "auxiliary_fuels": [
        {"id": "diesel", "unit": "t", "ncv_gj_per_unit": {"value": 43.0, "source": "GB/T 2589"},
         "carbon_content_tc_per_gj": {"value": 0.0202, "source": "IPCC 2006"},
         "oxidation_factor": {"value": 1.0, "source": "IPCC 2006"}},
        {"id": "natural_gas", "unit": "1000 Nm3", "ncv_gj_per_unit": {"value": 38.931, "source": "GB/T 2589"},
         "carbon_content_tc_per_gj": {"value": 0.0153, "source": "IPCC 2006"},
         "oxidation_factor": {"value": 0.99, "source": "plant test"}},
    ]})
    plugin = methodology_for(params)
    result = plugin.compute(_inputs(100_000_000, fuel={"diesel": 10.0, "natural_gas": 2.0}))
    # diesel: 10 × 43.0 × 0.0202 × 1.0 × 44/12 = 31.848667 t
    # gas:    2 × 38.931 × 0.0153 × 0.99 × 44/12 = 4.324378 t
    # PE = 36.173044 t, rounded up: 36,174 kg; BE = 100 MWh × 0.7 = 70 t
    assert result.project_kg == 36_174
    assert result.reductions_kg == 70_000 - 36_174
    names = [p.name for p in result.parameters]
    assert {"NCV[diesel]", "CC[natural_gas]", "OF[natural_gas]", "FC[diesel]"} <= set(names)
    with pytest.raises(MissingData, match="natural_gas"):
        plugin.compute(_inputs(1, fuel={"diesel": 1.0}))
    with pytest.raises(MissingData, match="coal"):
        plugin.compute(_inputs(1, fuel={"diesel": 1.0, "natural_gas": 0.0, "coal": 1.0}))


def test_offshore_wind_reports_its_eligibility_parameters_and_no_project_emissions() -> None:
    params = METHODOLOGIES["CCER-01-002"].params_model.model_validate(
        {"id": "CCER-01-002", "water_depth_m": {"value": 35.0, "source": "bathymetric survey 2022"}})
    result = methodology_for(params).compute(_inputs(2_000_000))
    assert result.project_kg == 0 and result.baseline_kg == 1_400
    assert ("water_depth", 35.0) in [(p.name, p.value) for p in result.parameters]


def test_ams_i_d_is_greenfield() -> None:
    params = METHODOLOGIES["AMS-I.D"].params_model.model_validate({"id": "AMS-I.D"})
    assert methodology_for(params).compute(_inputs(2_000_000)).baseline_kg == 1_400


def test_dataset_factor_applies_like_any_other() -> None:
    ef = (ParameterValue("EF_grid", 0.5306, "tCO2/MWh", "MEE 2023 national average"),)
    # 12.345678 MWh × 0.5306 = 6.550616747 t -> 6,550 kg
    assert methodology_for(Acm0002Params()).compute(_inputs(12_345_678, grid_ef=ef)).baseline_kg == 6_550


def test_leap_year_is_prorated_over_365_days() -> None:
    params = Acm0002Params.model_validate({
        "variant": "capacity_addition", "eg_historical_mwh": {"value": 365, "source": "PDD"},
        "sigma_historical_mwh": {"value": 0, "source": "PDD"}})
    days = (dt.date(2025, 1, 1) - dt.date(2024, 1, 1)).days
    result = methodology_for(params).compute(_inputs(400_000_000, days=days))
    assert result.eg_pj_wh == 400_000_000 - 366_000_000
