"""Project configuration: loading from TOML, TOOL07 defaults, eligibility and consistency rules."""

from __future__ import annotations

import datetime as dt
import tomllib
from fractions import Fraction
from importlib import resources

import pytest

from mrv_engine import (
    Claim,
    ClaimedElsewhere,
    ConfigError,
    MeterReadings,
    PeriodData,
    ProjectConfig,
    Scheme,
    Span,
    Technology,
    assess_period,
    load_project_config,
)
from mrv_engine.config import Monitoring, Plausibility
from mrv_engine.emission_factor import CombinedMargin, DatasetEntry
from mrv_engine.results import AdjustmentCode
from mrv_engine.timespan import day_start_ms
from tests.mrv_engine.builders import HOUR, OFFSET, T0, main_meter, project_dict, register

TOML = """
project_id = "offshore-1"
technology = "offshore_wind"
nameplate_capacity_mw = { value = 300.0, source = "approval NDRC 2023-12" }
utc_offset_minutes = 480

[crediting_period]
start = 2025-01-01
end = 2034-12-31

[methodology]
id = "CCER-01-002"
distance_offshore_km = { value = 42.0, source = "EIA report §3.1" }

[grid_ef]
kind = "dataset"
year = 2023
grid = "east"
column = "average"

[[meters]]
id = "main"
role = "main"
device_id = "rev-meter-1"
accuracy_class = "0.2S"

  [[meters.calibrations]]
  date = 2024-12-20
  error_pct = -0.05
  valid_until = 2025-12-19
  source = "DL/T 1664 certificate 88-2024"

[[meters]]
id = "check"
role = "check"
checks = "main"
device_id = "rev-meter-2"
accuracy_class = "0.5S"

[claims]
declared = ["CCER", "GEC"]
policy = "deduct"

  [[claims.issued]]
  scheme = "GEC"
  first_day = 2025-03-01
  last_day = 2025-03-31
  mwh = 1250
  reference = "GEC serials 0000000001-0000001250"

[monitoring]
interval_s = 900
settlement_tolerance = 0.002
"""


def test_loads_a_toml_document() -> None:
    config = load_project_config(tomllib.loads(TOML))
    assert config.technology is Technology.OFFSHORE_WIND
    assert config.methodology.id == "CCER-01-002"
    assert isinstance(config.grid_ef, DatasetEntry)
    assert config.meter("check").max_permissible == Fraction(5, 1000)
    assert config.meter("main").calibrations[0].valid_until == dt.date(2025, 12, 19)
    assert config.crediting_span.duration_ms == (dt.date(2035, 1, 1) - dt.date(2025, 1, 1)).days * 86_400_000


def test_tool07_default_weights_for_wind_and_solar_in_the_first_crediting_period() -> None:
    config = load_project_config(project_dict())
    assert isinstance(config.grid_ef, CombinedMargin)
    assert config.grid_ef.w_om is not None and config.grid_ef.w_bm is not None
    assert (config.grid_ef.w_om.value, config.grid_ef.w_bm.value) == (0.75, 0.25)
    assert "TOOL07" in config.grid_ef.w_om.source


def test_later_crediting_period_needs_configured_weights() -> None:
    with pytest.raises(ConfigError, match="configure w_om and w_bm"):
        load_project_config(project_dict(crediting_period={
            "start": dt.date(2024, 1, 1), "end": dt.date(2030, 12, 31), "number": 2}))
    weights = {"w_om": {"value": 0.5, "source": "PDD renewal §B"}, "w_bm": {"value": 0.5, "source": "PDD"}}
    config = load_project_config(project_dict(
        crediting_period={"start": dt.date(2024, 1, 1), "end": dt.date(2030, 12, 31), "number": 2},
        grid_ef={"kind": "combined_margin", "ef_om": {"value": 0.8, "source": "PDD"},
                 "ef_bm": {"value": 0.4, "source": "PDD"}, **weights}))
    assert isinstance(config.grid_ef, CombinedMargin) and config.grid_ef.w_om is not None
    assert config.grid_ef.w_om.value == 0.5


@pytest.mark.parametrize("weights", [(0.7, 0.2), (0.75, None)])
def test_weights_must_be_both_given_and_sum_to_one(weights: tuple[float, float | None]) -> None:
    grid_ef = {"kind": "combined_margin", "ef_om": {"value": 0.8, "source": "PDD"},
               "ef_bm": {"value": 0.4, "source": "PDD"}, "w_om": {"value": weights[0], "source": "PDD"}}
    if weights[1] is not None:
        grid_ef["w_bm"] = {"value": weights[1], "source": "PDD"}
    with pytest.raises(ConfigError, match="grid_ef"):
        load_project_config(project_dict(grid_ef=grid_ef))


def test_every_value_needs_a_source() -> None:
    with pytest.raises(ConfigError, match=r"nameplate_capacity_mw\.source"):
        load_project_config(project_dict(nameplate_capacity_mw={"value": 1.0}))


def _offshore(**methodology: object) -> dict[str, object]:
    return project_dict(technology="offshore_wind", claims={"declared": ["CCER"]},
                        crediting_period={"start": dt.date(2025, 1, 1), "end": dt.date(2034, 12, 31)},
                        methodology={"id": "CCER-01-002", **methodology})


def test_offshore_wind_eligibility_by_distance_or_depth() -> None:
    far = {"value": 31.0, "source": "EIA"}
    near = {"value": 12.0, "source": "EIA"}
    load_project_config(_offshore(distance_offshore_km=far))
    load_project_config(_offshore(distance_offshore_km=near, water_depth_m={"value": 35, "source": "survey"}))
    with pytest.raises(ConfigError, match="more than 30 km offshore"):
        load_project_config(_offshore(distance_offshore_km=near,
                                      water_depth_m={"value": 30, "source": "survey"}))


def test_offshore_wind_crediting_period_at_most_ten_years() -> None:
    data = _offshore(distance_offshore_km={"value": 50, "source": "EIA"})
    data["crediting_period"] = {"start": dt.date(2025, 1, 1), "end": dt.date(2035, 1, 1)}
    with pytest.raises(ConfigError, match="at most 10 years"):
        load_project_config(data)


def test_methodology_technology_must_match() -> None:
    data = _offshore(distance_offshore_km={"value": 50, "source": "EIA"})
    data["technology"] = "wind"
    with pytest.raises(ConfigError, match="applies to offshore_wind, not wind"):
        load_project_config(data)
    with pytest.raises(ConfigError, match="CCER-01-001 applies to solar_thermal"):
        load_project_config(project_dict(methodology={"id": "CCER-01-001"}, claims={"declared": ["CCER"]}))


def test_ams_i_d_is_small_scale_only() -> None:
    load_project_config(project_dict(methodology={"id": "AMS-I.D"}))
    with pytest.raises(ConfigError, match="up to 15 MW"):
        load_project_config(project_dict(methodology={"id": "AMS-I.D"},
                                         nameplate_capacity_mw={"value": 20, "source": "license"}))


def test_capacity_addition_needs_historical_generation() -> None:
    with pytest.raises(ConfigError, match="eg_historical_mwh"):
        load_project_config(project_dict(methodology={"id": "ACM0002", "variant": "capacity_addition"}))


def test_credited_scheme_must_be_declared() -> None:
    with pytest.raises(ConfigError, match=r"declare it in claims\.declared"):
        load_project_config(project_dict(claims={"declared": ["GEC"]}))


@pytest.mark.parametrize("meters, message", [
    ([main_meter(), main_meter()], "unique"),
    ([main_meter(role="check")], "names the main meter it checks"),
    ([main_meter(role="aux", device_id="inv-1")], "at least one main meter"),
    ([main_meter(), main_meter(id="C", device_id="c", role="check", checks="nope")], "distinct main meter"),
    ([main_meter(accuracy_class="class A")], "not a class index"),
    ([main_meter(calibrations=[{"date": dt.date(2024, 1, 2), "error_pct": 0.1,
                                 "valid_until": dt.date(2024, 1, 1), "source": "cert"}])], "precedes"),
])
def test_meter_rules(meters: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_project_config(project_dict(meters=meters))


def test_max_permissible_error_defaults_to_the_class_index() -> None:
    config = load_project_config(project_dict(meters=[main_meter(accuracy_class="0.5S")]))
    assert config.meters[0].max_permissible == Fraction(1, 200)
    config = load_project_config(project_dict(meters=[main_meter(max_permissible_error_pct=0.3)]))
    assert config.meters[0].max_permissible == Fraction(3, 1000)


def _local(day: dt.date) -> int:
    return day_start_ms(day, OFFSET)


def test_issued_claims_cover_their_local_days() -> None:
    config = load_project_config(tomllib.loads(TOML))
    march = Span(_local(dt.date(2025, 3, 1)), _local(dt.date(2025, 4, 1)))  # last_day inclusive
    expected = Claim(Scheme.GEC, march, 1250, "GEC serials 0000000001-0000001250")
    assert config.issued_claims() == (expected,)
    assert config.claims_overlapping(Span(_local(dt.date(2025, 3, 31)), _local(dt.date(2025, 4, 30)))) == (
        expected,)
    # a period touching the claim's days only at an end does not overlap them
    assert config.claims_overlapping(Span(_local(dt.date(2025, 4, 1)), _local(dt.date(2025, 5, 1)))) == ()
    assert config.claims_overlapping(Span(_local(dt.date(2025, 2, 1)), _local(dt.date(2025, 3, 1)))) == ()


def _issued(scheme: str = "GEC", first_day: dt.date = dt.date(2024, 6, 1), last_day: dt.date = dt.date(2024, 6, 30),
            mwh: float = 2) -> dict[str, object]:
    return {"scheme": scheme, "first_day": first_day, "last_day": last_day, "mwh": mwh,
            "reference": f"{scheme} registry {first_day:%Y-%m}"}


@pytest.mark.parametrize("issued, message", [
    (_issued(last_day=dt.date(2024, 5, 31)), "last_day 2024-05-31 precedes first_day 2024-06-01"),
    (_issued(scheme="I-REC"), r"claims\.issued\[0\]: a claim under I-REC .* declares only CDM, GEC"),
    (_issued(mwh=1.5), "GEC certificates are whole MWh"),
    (_issued(mwh=-1), "negative"),
])
def test_issued_claim_rules(issued: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_project_config(project_dict(claims={"declared": ["CDM", "GEC"], "issued": [issued]}))


def test_i_rec_issued_up_to_2024_only() -> None:
    declared = ["CDM", "I-REC"]
    december = _issued("I-REC", dt.date(2024, 12, 1), dt.date(2024, 12, 31))  # ends 2025-01-01 00:00 +08:00
    load_project_config(project_dict(claims={"declared": declared, "issued": [december]}))
    january = _issued("I-REC", dt.date(2024, 12, 1), dt.date(2025, 1, 1))
    with pytest.raises(ConfigError, match="I-REC is not issued for Chinese generation after 2024"):
        load_project_config(project_dict(claims={"declared": declared, "issued": [january]}))


def _offshore_with_gec(policy: str, certificates: int) -> ProjectConfig:
    data = _offshore(distance_offshore_km={"value": 50, "source": "EIA"})
    data["crediting_period"] = {"start": dt.date(2024, 1, 1), "end": dt.date(2033, 12, 31)}
    data["nameplate_capacity_mw"] = {"value": 10, "source": "approval"}
    data["claims"] = {"declared": ["CCER", "GEC"], "policy": policy, "issued": [_issued(mwh=certificates)]}
    return load_project_config(data)


def test_issued_certificates_reach_the_double_claiming_guard() -> None:
    period = Span(T0, T0 + HOUR)  # 2024-06-01, inside the issued record's June
    meters = {"M1": MeterReadings(register([600_000, 700_000, 800_000, 900_000]), register([0] * 4))}
    deduct = _offshore_with_gec("deduct", 2)
    # as `mrv report` passes them: load_period(..., claims=config.claims_overlapping(period))
    result = assess_period(deduct, PeriodData(period=period, meters=meters,
                                              claims=deduct.claims_overlapping(period)))
    assert (result.export_wh, result.net_generation_wh) == (3_000_000, 1_000_000)
    assert [(a.code, a.amount_wh) for a in result.adjustments] == [(AdjustmentCode.DOUBLE_CLAIM, -2_000_000)]
    refuse = _offshore_with_gec("refuse", 2)
    with pytest.raises(ClaimedElsewhere, match="GEC 2 MWh"):
        assess_period(refuse, PeriodData(period=period, meters=meters, claims=refuse.claims_overlapping(period)))


EXAMPLE = resources.files("mrv_engine").joinpath("project.example.toml")


def test_the_packaged_example_project_loads_as_documented() -> None:
    with EXAMPLE.open("rb") as f:
        config = load_project_config(tomllib.load(f))
    assert (config.technology, config.methodology.id, config.nameplate_capacity_mw.value) == (
        Technology.SOLAR_PV, "ACM0002", 50.0)
    assert [(m.id, m.role, m.checks) for m in config.meters] == [
        ("M1", "main", None), ("M2", "main", None), ("C1", "check", "M1")]
    assert config.meter("C1").max_permissible == Fraction(5, 1000)
    assert isinstance(config.grid_ef, CombinedMargin) and config.grid_ef.w_om is not None
    assert config.grid_ef.w_om.value == 0.75  # the TOOL07 default the comments promise
    assert (set(config.claims.declared), config.claims.policy, config.claims.issued) == (
        {Scheme.CDM, Scheme.GEC}, "deduct", ())
    # The file writes out every default: they must be set explicitly, and equal pydantic's, so neither drifts.
    assert config.monitoring == Monitoring(interval_s=900)
    assert config.monitoring.model_fields_set == set(Monitoring.model_fields)
    assert config.plausibility == Plausibility()
    assert config.plausibility.model_fields_set == set(Plausibility.model_fields) - {"clock_max_behind_s"}


def test_the_examples_commented_out_issued_claim_is_valid() -> None:
    # Its lines are the ones commented out with "#  "; uncommented, they must load.
    text = "\n".join(line.removeprefix("#  ") for line in EXAMPLE.read_text(encoding="utf-8").splitlines())
    (claim,) = load_project_config(tomllib.loads(text)).claims.issued
    assert (claim.scheme, claim.first_day, claim.last_day, claim.mwh) == (
        Scheme.GEC, dt.date(2025, 3, 1), dt.date(2025, 3, 31), 6200)


def test_false_switches_a_check_off() -> None:
    assert Plausibility.model_validate({"pr_max": False, "duplicate_window": False}).pr_max is None
    assert Plausibility.model_validate({"duplicate_window": False}).duplicate_window is None
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        Plausibility.model_validate({"duplicate_window": 0})
