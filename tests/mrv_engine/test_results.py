"""Period results: JSON form, round trip, carbon-asset identifier."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from mrv_engine import (
    Adjustment,
    AdjustmentCode,
    EnvelopeDigest,
    Flag,
    FlagCode,
    InvalidResult,
    MeterSummary,
    ParameterValue,
    PeriodResult,
    Span,
)
from mrv_engine.results import canonical_json
from tests.mrv_engine.builders import T0

HASHES = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]


def _result(**changes: Any) -> PeriodResult:
    result = PeriodResult(
        project_id="p1", methodology_id="ACM0002", period=Span(T0, T0 + 3_600_000),
        export_wh=1_000_000, import_wh=10_000, net_generation_wh=987_879, eg_pj_wh=987_879,
        baseline_kg=691, project_kg=0, leakage_kg=0, intervals_present=4, intervals_expected=4,
        adjustments=(Adjustment(AdjustmentCode.METER_ERROR, "out_of_spec", "M1", "export", -2_100,
                                Span(T0, T0 + 3_600_000), "meter error"),),
        flags=(Flag.make(FlagCode.GAP, "meter-1", Span(T0, T0 + 1), register="export", duration_ms=1),),
        parameters=(ParameterValue("EF_grid", 0.7, "tCO2/MWh", "combined margin"),),
        meters=(MeterSummary("M1", "main", "meter-1", 1_000_000, 10_000, 987_879, 4, 4),),
        envelopes=EnvelopeDigest.of(HASHES))
    return dataclasses.replace(result, **changes)


def test_round_trip_through_json() -> None:
    result = _result()
    text = json.dumps(result.to_dict())
    assert PeriodResult.from_dict(json.loads(text)) == result
    assert list(result.to_dict()) == ["asset_id", "project_id", "methodology", "period", "generation",
                                      "emissions", "completeness", "adjustments", "flags", "parameters",
                                      "meters", "envelopes"]
    assert result.to_dict()["emissions"] == {"baseline_tco2e": "0.691", "project_tco2e": "0.000",
                                             "leakage_tco2e": "0.000", "reductions_tco2e": "0.691",
                                             "issuable_units": 0}


def test_asset_id_is_deterministic_and_covers_what_it_claims() -> None:
    result = _result()
    assert result.asset_id.startswith("mrv1:") and len(result.asset_id) == 5 + 64
    assert _result().asset_id == result.asset_id
    # the identifier is SHA-256 over the documented canonical body
    body = {"project": "p1", "methodology": "ACM0002", "period": {"start_ms": T0, "end_ms": T0 + 3_600_000},
            "reductions_kg": 691, "net_generation_wh": 987_879,
            "parameters": [hashlib.sha256(canonical_json({"name": "EF_grid", "value": 0.7, "unit": "tCO2/MWh",
                                                          "source": "combined margin"})).hexdigest()],
            "envelopes": {"count": 3, "sha256": hashlib.sha256(
                b"".join(sorted(bytes.fromhex(h) for h in HASHES))).hexdigest()}}
    assert result.asset_id == "mrv1:" + hashlib.sha256(canonical_json(body)).hexdigest()
    for change in ({"baseline_kg": 692}, {"net_generation_wh": 987_880}, {"period": Span(T0, T0 + 1)},
                   {"envelopes": EnvelopeDigest.of(HASHES[:2])},
                   {"parameters": (ParameterValue("EF_grid", 0.7, "tCO2/MWh", "other source"),)}):
        assert _result(**change).asset_id != result.asset_id
    assert _result(flags=()).asset_id == result.asset_id  # flags explain, they are not the asset


def test_envelope_digest_ignores_order_and_duplicates() -> None:
    assert EnvelopeDigest.of(HASHES) == EnvelopeDigest.of(HASHES[::-1] + HASHES[:1])
    with pytest.raises(ValueError, match="64 lowercase hex"):
        EnvelopeDigest.of(["ABC"])


def test_tampered_results_are_refused() -> None:
    data = _result().to_dict()
    data["generation"]["net_wh"] += 1
    with pytest.raises(InvalidResult, match="does not match"):
        PeriodResult.from_dict(data)
    data = _result().to_dict()
    data["emissions"]["reductions_tco2e"] = "9.000"
    with pytest.raises(InvalidResult, match="reductions"):
        PeriodResult.from_dict(data)
    with pytest.raises(InvalidResult, match="malformed"):
        PeriodResult.from_dict({"asset_id": "x"})


def test_adjustments_never_add_energy() -> None:
    with pytest.raises(ValueError, match="never adds energy"):
        Adjustment(AdjustmentCode.SETTLEMENT, "invoice", None, "net", 1, None, "no")
