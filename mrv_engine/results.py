"""What a monitoring period yields: net generation, emissions, every correction, flag and parameter.

All types are frozen. `PeriodResult.to_dict()` is JSON-ready with a stable key order and
`PeriodResult.from_dict()` reads it back. The carbon-asset identifier is

    "mrv1:" + hex(SHA-256(canonical JSON of {project, methodology, period, reductions_kg,
                                             net_generation_wh, parameter hashes, envelopes}))

where canonical JSON means sorted keys, no whitespace, ASCII; a parameter hash is the SHA-256 of the
parameter's canonical JSON; `envelopes` is {count, sha256} with sha256 over the sorted, de-duplicated
envelope hashes (SHA-256 of each envelope's exact bytes, as in the envelopes' `prev` chain), 32 bytes
each, concatenated. The identifier stays small for millions of envelopes, and any verifier holding the
envelopes can recompute it.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from mrv_engine.columns import EnvelopeHashes
from mrv_engine.errors import InvalidResult
from mrv_engine.timespan import Span
from mrv_engine.units import KG_PER_TONNE, kg_from_text, tonnes_text

Register = Literal["export", "import", "net"]
EvidenceValue = int | float | str
ASSET_ID_PREFIX = "mrv1:"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class FlagCode(enum.StrEnum):
    # plausibility (mrv_engine.plausibility)
    ABOVE_NAMEPLATE = "above_nameplate"
    PV_EXPORT_AT_NIGHT = "pv_export_at_night"
    PV_ABOVE_IRRADIANCE = "pv_above_irradiance"
    PV_BELOW_IRRADIANCE = "pv_below_irradiance"
    WIND_ABOVE_POWER_CURVE = "wind_above_power_curve"
    FROZEN_REGISTER = "frozen_register"
    FLAT_LINE = "flat_line"
    REGISTER_RESET = "register_reset"
    REGISTER_ROLLOVER = "register_rollover"
    IMPOSSIBLE_RAMP = "impossible_ramp"
    DUPLICATED_PATTERN = "duplicated_pattern"
    CLOCK_SKEW = "clock_skew"
    # data coverage and cross-checks (mrv_engine.net_generation, mrv_engine.double_claim)
    UNUSABLE_READINGS = "unusable_readings"
    GAP = "gap"
    BOUNDARY_UNCOVERED = "boundary_uncovered"
    CHECK_METER_DISAGREEMENT = "check_meter_disagreement"
    SETTLEMENT_MISMATCH = "settlement_mismatch"
    CLAIMED_ELSEWHERE = "claimed_elsewhere"


class AdjustmentCode(enum.StrEnum):
    PLAUSIBILITY = "plausibility"  # cause: the flag code whose energy was excluded or bounded
    METER_ERROR = "meter_error"  # cause: out_of_spec | uncalibrated | calibration_overdue
    BOUNDARY_IMPORT = "boundary_import"  # import of readings bracketing a period boundary
    UNMETERED_IMPORT = "unmetered_import"  # cause: uncovered | register_reset; bounded by max power
    CHECK_METER = "check_meter"
    SETTLEMENT = "settlement"
    DOUBLE_CLAIM = "double_claim"


@dataclass(frozen=True)
class Flag:
    """A finding with its evidence. `export_cap_w` says what happens to the flagged device's export energy
    in intervals touching `span`: None = reported only, 0 = excluded, > 0 = bounded to that mean power.
    `device_id` is empty for a project-level finding (settlement, double claim)."""

    code: FlagCode
    device_id: str
    span: Span
    evidence: tuple[tuple[str, EvidenceValue], ...] = ()
    export_cap_w: float | None = None

    @classmethod
    def make(cls, code: FlagCode, device_id: str, span: Span, *, export_cap_w: float | None = None,
             **evidence: EvidenceValue) -> Flag:
        return cls(code, device_id, span, tuple(evidence.items()), export_cap_w)

    def evidence_dict(self) -> dict[str, EvidenceValue]:
        return dict(self.evidence)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "device_id": self.device_id, "span": self.span.to_dict(),
                "evidence": self.evidence_dict(), "export_cap_w": self.export_cap_w}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flag:
        return cls(FlagCode(data["code"]), data["device_id"], Span.from_dict(data["span"]),
                   tuple(data["evidence"].items()), data["export_cap_w"])


@dataclass(frozen=True)
class Adjustment:
    """A correction or deduction. `amount_wh` is its effect on net generation: never positive."""

    code: AdjustmentCode
    cause: str
    meter_id: str | None
    register: Register
    amount_wh: int
    span: Span | None
    reason: str

    def __post_init__(self) -> None:
        if self.amount_wh > 0:
            raise ValueError(f"an adjustment never adds energy: {self.code}/{self.cause} {self.amount_wh} Wh")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "cause": self.cause, "meter_id": self.meter_id,
                "register": self.register, "amount_wh": self.amount_wh,
                "span": None if self.span is None else self.span.to_dict(), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Adjustment:
        span = None if data["span"] is None else Span.from_dict(data["span"])
        return cls(AdjustmentCode(data["code"]), data["cause"], data["meter_id"], data["register"],
                   int(data["amount_wh"]), span, data["reason"])


@dataclass(frozen=True)
class ParameterValue:
    """A value used in the computation, with its unit and provenance."""

    name: str
    value: float
    unit: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterValue:
        return cls(data["name"], float(data["value"]), data["unit"], data["source"])

    def sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()


@dataclass(frozen=True)
class MeterSummary:
    """One meter's contribution: metered export/import inside the period, its net after its own
    adjustments, and the intervals present."""

    meter_id: str
    role: str
    device_id: str
    export_wh: int
    import_wh: int
    net_wh: int
    intervals_present: int
    intervals_expected: int

    def to_dict(self) -> dict[str, Any]:
        return {"meter_id": self.meter_id, "role": self.role, "device_id": self.device_id,
                "export_wh": self.export_wh, "import_wh": self.import_wh, "net_wh": self.net_wh,
                "intervals_present": self.intervals_present, "intervals_expected": self.intervals_expected}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeterSummary:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class EnvelopeDigest:
    """The envelopes a result was computed from, as a count and one digest."""

    count: int
    sha256: str

    @classmethod
    def of(cls, envelope_hashes: Iterable[str]) -> EnvelopeDigest:
        """Digest of hex SHA-256 envelope hashes (order and duplicates do not matter)."""
        if isinstance(envelope_hashes, EnvelopeHashes):  # already sorted and distinct bytes
            return cls(len(envelope_hashes), envelope_hashes.sha256())
        unique = list(envelope_hashes)
        if not all(a < b for a, b in itertools.pairwise(unique)):  # already sorted and distinct: keep
            unique = sorted(set(unique))
        joined = "".join(unique)
        # One conversion and a few C-level scans of the joined text (reports digest millions of hashes);
        # fromhex skips whitespace and takes upper case, hence the length and case checks.
        try:
            raw = bytes.fromhex(joined)
        except ValueError:
            raw = b""
        if len(raw) != 32 * len(unique) or len(joined) != 64 * len(unique) or any(c in joined for c in "ABCDEF"):
            bad = next(v for v in unique if not _HEX64.fullmatch(v))
            raise ValueError(f"an envelope hash is 64 lowercase hex characters, got {bad!r}")
        return cls(len(unique), hashlib.sha256(raw).hexdigest())

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sha256": self.sha256}


@dataclass(frozen=True)
class PeriodResult:
    """The outcome of one monitoring period. Energy in Wh; emissions in integer kgCO2e (see units.py)."""

    project_id: str
    methodology_id: str
    period: Span
    export_wh: int  # metered inside the period (main meters), before adjustments
    import_wh: int
    net_generation_wh: int  # after every adjustment: the electricity credited
    eg_pj_wh: int  # project electricity the baseline applies to (differs for capacity additions)
    baseline_kg: int
    project_kg: int
    leakage_kg: int
    intervals_present: int
    intervals_expected: int
    adjustments: tuple[Adjustment, ...]
    flags: tuple[Flag, ...]
    parameters: tuple[ParameterValue, ...]
    meters: tuple[MeterSummary, ...]
    envelopes: EnvelopeDigest

    @property
    def reductions_kg(self) -> int:
        return self.baseline_kg - self.project_kg - self.leakage_kg

    @property
    def issuable_units(self) -> int:
        """Whole tCO2e that could be issued: floor of the reductions, never negative."""
        return max(0, self.reductions_kg // KG_PER_TONNE)

    @property
    def completeness(self) -> Fraction:
        """Share of expected intervals with a usable export reading (main meters, worst of them)."""
        if self.intervals_expected == 0:
            return Fraction(1)
        return Fraction(self.intervals_present, self.intervals_expected)

    @property
    def asset_id(self) -> str:
        body = {
            "project": self.project_id,
            "methodology": self.methodology_id,
            "period": self.period.to_dict(),
            "reductions_kg": self.reductions_kg,
            "net_generation_wh": self.net_generation_wh,
            "parameters": sorted(p.sha256() for p in self.parameters),
            "envelopes": self.envelopes.to_dict(),
        }
        return ASSET_ID_PREFIX + hashlib.sha256(canonical_json(body)).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id,
            "project_id": self.project_id,
            "methodology": self.methodology_id,
            "period": self.period.to_dict(),
            "generation": {"export_wh": self.export_wh, "import_wh": self.import_wh,
                           "net_wh": self.net_generation_wh, "eg_pj_wh": self.eg_pj_wh},
            "emissions": {"baseline_tco2e": tonnes_text(self.baseline_kg),
                          "project_tco2e": tonnes_text(self.project_kg),
                          "leakage_tco2e": tonnes_text(self.leakage_kg),
                          "reductions_tco2e": tonnes_text(self.reductions_kg),
                          "issuable_units": self.issuable_units},
            "completeness": {"intervals_present": self.intervals_present,
                             "intervals_expected": self.intervals_expected,
                             "fraction": round(float(self.completeness), 6)},
            "adjustments": [a.to_dict() for a in self.adjustments],
            "flags": [f.to_dict() for f in self.flags],
            "parameters": [p.to_dict() for p in self.parameters],
            "meters": [m.to_dict() for m in self.meters],
            "envelopes": self.envelopes.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PeriodResult:
        """Read a `to_dict()` form back; refuses one whose identifier does not match its content."""
        try:
            generation, emissions = data["generation"], data["emissions"]
            result = cls(
                project_id=data["project_id"],
                methodology_id=data["methodology"],
                period=Span.from_dict(data["period"]),
                export_wh=int(generation["export_wh"]),
                import_wh=int(generation["import_wh"]),
                net_generation_wh=int(generation["net_wh"]),
                eg_pj_wh=int(generation["eg_pj_wh"]),
                baseline_kg=kg_from_text(emissions["baseline_tco2e"]),
                project_kg=kg_from_text(emissions["project_tco2e"]),
                leakage_kg=kg_from_text(emissions["leakage_tco2e"]),
                intervals_present=int(data["completeness"]["intervals_present"]),
                intervals_expected=int(data["completeness"]["intervals_expected"]),
                adjustments=tuple(Adjustment.from_dict(a) for a in data["adjustments"]),
                flags=tuple(Flag.from_dict(f) for f in data["flags"]),
                parameters=tuple(ParameterValue.from_dict(p) for p in data["parameters"]),
                meters=tuple(MeterSummary.from_dict(m) for m in data["meters"]),
                envelopes=EnvelopeDigest(int(data["envelopes"]["count"]), data["envelopes"]["sha256"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidResult(f"malformed period result: {e!r}") from None
        if kg_from_text(emissions["reductions_tco2e"]) != result.reductions_kg:
            raise InvalidResult("reductions do not equal baseline - project - leakage emissions")
        if data["asset_id"] != result.asset_id:
            raise InvalidResult(f"asset id {data['asset_id']} does not match the content ({result.asset_id})")
        return result


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")
