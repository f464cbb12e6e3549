"""Net electricity supplied to the grid in a monitoring period, from cumulative registers, conservatively.

Boundary rule (no interpolation, ever):

* Export is credited only for steps whose two readings both lie inside the period or on its boundary.
  Energy of a step that straddles a boundary is credited to neither period (it is reported in a
  `boundary_uncovered` flag). Reset steps credit nothing.
* Import is charged for every step inside the period; a step straddling a boundary is charged its whole
  register difference, but no more than the meter's maximum power over the part inside the period; a
  reset step, and any time of the period not covered by import readings at all, is charged the meter's
  maximum power over that time (the conservative bound, shown as a deduction).

Then, per meter and in this order: plausibility flags cap or exclude export steps they touch; meter error
corrections (`meter_error`) lower export and raise every import charge, bounds included. Each register is
rounded once, from exact fractions: credited export down, charged import up. Because every bound only
loosens when readings go missing, removing readings never raises the result (a property test holds the
code to it). Across meters: the main and check meter are
compared within their accuracy classes (the lower net is used on disagreement), and the total is compared
with the grid company's settlement (the lower is used beyond tolerance). Every step is an `Adjustment`,
so that `net = export − import + Σ adjustments` reconciles to the Wh.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from mrv_engine.meter_error import ErrorCause, ErrorTimeline
from mrv_engine.registers import RegisterSteps
from mrv_engine.results import (
    Adjustment,
    AdjustmentCode,
    EvidenceValue,
    Flag,
    FlagCode,
    MeterSummary,
    Register,
)
from mrv_engine.series import I64
from mrv_engine.timespan import Span
from mrv_engine.units import MS_PER_DAY, MS_PER_HOUR, exact, wh_from_mwh_down, wh_from_mwh_up

# CCER: after a main/check disagreement the meters must be recalibrated within 30 days.
RECALIBRATION_DUE_MS = 30 * MS_PER_DAY


class MeterRole(enum.StrEnum):
    MAIN = "main"  # revenue meter at the grid connection: credited
    CHECK = "check"  # backup meter on the same connection: cross-check only
    AUX = "aux"  # any other meter (inverter, auxiliary supply): plausibility only


@dataclass(frozen=True)
class MeterSpec:
    meter_id: str
    device_id: str
    role: MeterRole
    max_power_w: float  # largest power through the meter in either direction: bounds unknown energy
    max_permissible: Fraction  # max permissible relative error of its accuracy class
    errors: ErrorTimeline
    has_import: bool = True
    checks: str | None = None  # for a check meter: the main meter it checks


@dataclass(frozen=True)
class Settlement:
    """Electricity settled with the grid company for the period (from its invoices), in MWh."""

    export_mwh: float
    import_mwh: float | None = None
    reference: str = ""


@dataclass(frozen=True)
class MeterEnergy:
    spec: MeterSpec
    export_wh: int  # metered inside the period
    import_wh: int
    adjustments: tuple[Adjustment, ...]
    flags: tuple[Flag, ...]
    intervals_present: int
    intervals_expected: int

    def _sum(self, register: Register) -> int:
        return sum(a.amount_wh for a in self.adjustments if a.register == register)

    @property
    def export_credited_wh(self) -> int:
        return self.export_wh + self._sum("export")

    @property
    def import_charged_wh(self) -> int:
        return self.import_wh - self._sum("import")

    @property
    def net_wh(self) -> int:
        return self.export_credited_wh - self.import_charged_wh

    def summary(self) -> MeterSummary:
        return MeterSummary(self.spec.meter_id, self.spec.role.value, self.spec.device_id, self.export_wh,
                            self.import_wh, self.net_wh, self.intervals_present, self.intervals_expected)


@dataclass(frozen=True)
class NetGeneration:
    """The project's net generation for a period with everything that shaped it."""

    export_wh: int
    import_wh: int
    net_wh: int
    adjustments: tuple[Adjustment, ...]
    flags: tuple[Flag, ...]
    meters: tuple[MeterSummary, ...]
    intervals_present: int
    intervals_expected: int


def _touched(t0: I64, t1: I64, span: Span) -> slice:
    """The consecutive steps [t0, t1] (sorted) touching `span`: a positive overlap, or for a point span,
    the steps containing the point."""
    if span.start_ms == span.end_ms:
        return slice(int(np.searchsorted(t1, span.start_ms, "left")),
                     int(np.searchsorted(t0, span.start_ms, "right")))
    return slice(int(np.searchsorted(t1, span.start_ms, "right")),
                 int(np.searchsorted(t0, span.end_ms, "left")))


def _extent(t0: I64, t1: I64, mask: NDArray[np.bool_]) -> Span | None:
    if not mask.any():
        return None
    return Span(int(t0[mask].min()), int(t1[mask].max()))


@dataclass(frozen=True)
class _Deduction:
    """An exact amount to take off net generation, before the one rounding of its register."""

    code: AdjustmentCode
    cause: str
    amount: Fraction
    span: Span | None
    reason: str


def _round_up(meter_id: str, register: Register, deductions: Sequence[_Deduction]) -> list[Adjustment]:
    """Whole-Wh adjustments adding up to the exact total rounded up: each is the running total's
    ceiling minus what is already allocated, so splitting a total by cause never changes it and a
    register is rounded once (credited energy down, charged energy up)."""
    allocated, running, adjustments = 0, Fraction(0), []
    for d in deductions:
        running += d.amount
        amount = math.ceil(running) - allocated
        allocated += amount
        if amount:
            adjustments.append(Adjustment(d.code, d.cause, meter_id, register, -amount, d.span, d.reason))
    return adjustments


def _union(a: Span | None, b: Span) -> Span:
    return b if a is None else Span(min(a.start_ms, b.start_ms), max(a.end_ms, b.end_ms))


def _meter_errors(spec: MeterSpec, register: Register, t0: I64, t1: I64, energy: I64,
                  pieces: Sequence[tuple[Span, Fraction]] = ()) -> list[_Deduction]:
    """Corrections of per-step `energy` over [t0, t1] and of exact `pieces` by the governing meter error
    (the largest error of the time each spans), one per cause."""
    exact_by_cause: dict[ErrorCause, Fraction] = {}
    span_by_cause: dict[ErrorCause, Span] = {}
    sources_by_cause: dict[ErrorCause, dict[str, None]] = {}  # ordered set

    def add(index: int, amount: Fraction | int, span: Span | None) -> None:
        segment = spec.errors.segments[index]
        if amount and span is not None:
            known = exact_by_cause.get(segment.cause, Fraction(0))
            exact_by_cause[segment.cause] = known + amount * segment.error
            span_by_cause[segment.cause] = _union(span_by_cause.get(segment.cause), span)
            sources_by_cause.setdefault(segment.cause, {})[segment.source] = None

    governing = spec.errors.governing_segment(t0, t1)
    for index in np.flatnonzero(np.bincount(governing + 1, minlength=1)[1:]).tolist():
        mask = governing == index
        add(index, int(energy[mask].sum()), _extent(t0, t1, mask & (energy > 0)))
    starts = np.array([span.start_ms for span, _ in pieces], dtype=np.int64)
    ends = np.array([span.end_ms for span, _ in pieces], dtype=np.int64)
    for (span, amount), index in zip(pieces, spec.errors.governing_segment(starts, ends).tolist(),
                                     strict=True):
        if index >= 0:
            add(index, amount, span)
    direction = "export × (1 − |e|)" if register == "export" else "import × (1 + |e|)"
    return [_Deduction(AdjustmentCode.METER_ERROR, cause.value, exact_by_cause[cause], span_by_cause[cause],
                       f"meter error correction, {direction} ({'; '.join(sources_by_cause[cause])})")
            for cause in ErrorCause if cause in exact_by_cause]


def _completeness(times: I64, period: Span, interval_ms: int) -> tuple[int, int]:
    expected = -(-period.duration_ms // interval_ms)
    slots = (times[(times >= period.start_ms) & (times < period.end_ms)] - period.start_ms) // interval_ms
    return int(np.count_nonzero(np.diff(slots))) + min(slots.size, 1), expected  # times are sorted


def _coverage_flags(spec: MeterSpec, register: Register, steps: RegisterSteps, period: Span, gap_ms: int
                    ) -> list[Flag]:
    t0, t1 = steps.t0, steps.t1
    flags = []
    overlap = np.clip(np.minimum(t1, period.end_ms) - np.maximum(t0, period.start_ms), 0, None)
    for i in np.flatnonzero((overlap > 0) & (t1 - t0 > gap_ms)):
        flags.append(Flag.make(FlagCode.GAP, spec.device_id, Span(int(t0[i]), int(t1[i])), register=register,
                               duration_ms=int(t1[i] - t0[i]), energy_kept_wh=int(steps.delta_wh[i])))
    if steps.dropped:
        flags.append(Flag.make(FlagCode.UNUSABLE_READINGS, spec.device_id, period, register=register,
                               **dict(steps.dropped)))
    return flags


def _uncovered(times: I64, period: Span) -> list[Span]:
    """Parts of the period not between the first and the last of `times` (all of it with < 2)."""
    if times.size < 2 or times[-1] <= period.start_ms or times[0] >= period.end_ms:
        return [period]
    first, last = int(times[0]), int(times[-1])
    parts = [Span(period.start_ms, first)] if first > period.start_ms else []
    return parts + ([Span(last, period.end_ms)] if last < period.end_ms else [])


def _import_charges(spec: MeterSpec, steps: RegisterSteps, period: Span) -> tuple[int, list[Adjustment]]:
    """Import metered inside the period, and the conservative charges for boundaries, resets and time
    without readings, corrected for meter error like measured import. Every charge stays an exact
    fraction until the register's one rounding up."""
    i0, i1, delta = steps.t0, steps.t1, steps.delta_wh
    clipped0, clipped1 = np.maximum(i0, period.start_ms), np.minimum(i1, period.end_ms)
    overlap = np.clip(clipped1 - clipped0, 0, None)
    inside = (i0 >= period.start_ms) & (i1 <= period.end_ms) & steps.counted
    straddle = ~inside & steps.counted & (overlap > 0)
    reset = ~steps.counted & (overlap > 0)
    max_power_w = exact(spec.max_power_w)

    def bound(span: Span) -> Fraction:
        return max_power_w * span.duration_ms / MS_PER_HOUR

    def clipped(i: int) -> Span:
        return Span(int(clipped0[i]), int(clipped1[i]))

    boundary = [(clipped(i), min(Fraction(int(delta[i])), bound(clipped(i))))
                for i in np.flatnonzero(straddle).tolist()]
    resets = [(clipped(i), bound(clipped(i))) for i in np.flatnonzero(reset).tolist()]
    uncovered = [(span, bound(span)) for span in _uncovered(steps.times_ms, period)]
    uncovered_ms = sum(span.duration_ms for span, _ in uncovered)
    charges = [
        _Deduction(AdjustmentCode.BOUNDARY_IMPORT, "boundary", sum((a for _, a in boundary), Fraction(0)),
                   _extent(i0, i1, straddle),
                   "import of readings bracketing a period boundary, at most max power × time inside"),
        _Deduction(AdjustmentCode.UNMETERED_IMPORT, "register_reset",
                   sum((a for _, a in resets), Fraction(0)), _extent(i0, i1, reset),
                   "import across a register reset: max power × time"),
        _Deduction(AdjustmentCode.UNMETERED_IMPORT, "uncovered", sum((a for _, a in uncovered), Fraction(0)),
                   period, f"no import readings for {uncovered_ms} ms of the period: max power × time"),
    ]
    measured = np.where(inside, delta, 0)
    charges += _meter_errors(spec, "import", i0, i1, measured, boundary + resets + uncovered)
    return int(measured.sum()), _round_up(spec.meter_id, "import", charges)


def meter_energy(spec: MeterSpec, export: RegisterSteps, import_: RegisterSteps | None, period: Span, *,
                 interval_ms: int, gap_ms: int, caps: Sequence[Flag] = ()) -> MeterEnergy:
    """One meter's energy in `period`. `caps` are the flags on this meter's device that exclude or bound
    export (`Flag.export_cap_w` not None), applied in order."""
    if import_ is None and spec.has_import:
        raise ValueError(f"meter {spec.meter_id} has an import register but no import series was given")
    adjustments: list[Adjustment] = []
    flags = _coverage_flags(spec, "export", export, period, gap_ms)

    t0, t1 = export.t0, export.t1
    inner = (t0 >= period.start_ms) & (t1 <= period.end_ms)
    credit = np.where(inner & export.counted, export.delta_wh, 0)
    export_wh = int(credit.sum())
    inner_times = export.times_ms[(export.times_ms >= period.start_ms) & (export.times_ms <= period.end_ms)]
    uncounted = export.counted & ~inner & (t1 > period.start_ms) & (t0 < period.end_ms)
    uncovered = sum(span.duration_ms for span in _uncovered(inner_times, period))
    if uncovered:
        flags.append(Flag.make(FlagCode.BOUNDARY_UNCOVERED, spec.device_id, period, register="export",
                               uncovered_ms=uncovered, uncounted_wh=int(export.delta_wh[uncounted].sum())))

    capped = [(flag.code, flag.span, flag.export_cap_w) for flag in caps if flag.export_cap_w is not None]
    for code in dict.fromkeys(c for c, _, _ in capped):
        before = credit.copy()
        for span, cap_w in ((s, w) for c, s, w in capped if c == code):
            steps = _touched(t0, t1, span)
            cap = np.floor(cap_w * (t1[steps] - t0[steps]) / MS_PER_HOUR).astype(np.int64)
            credit[steps] = np.minimum(credit[steps], cap)  # steps outside the period credit 0 already
        removed = int((before - credit).sum())
        if removed:
            verb = "excluded" if all(w == 0 for c, _, w in capped if c == code) else "bounded"
            adjustments.append(Adjustment(AdjustmentCode.PLAUSIBILITY, code.value, spec.meter_id, "export",
                                          -removed, _extent(t0, t1, before != credit),
                                          f"export {verb} where {code.value} was flagged"))
    adjustments += _round_up(spec.meter_id, "export", _meter_errors(spec, "export", t0, t1, credit))

    import_wh = 0
    if import_ is not None:
        flags += _coverage_flags(spec, "import", import_, period, gap_ms)
        import_wh, import_adjustments = _import_charges(spec, import_, period)
        adjustments += import_adjustments

    present, expected = _completeness(export.times_ms, period, interval_ms)
    return MeterEnergy(spec, export_wh, import_wh, tuple(adjustments), tuple(flags), present, expected)


def _check_meter(main: MeterEnergy, check: MeterEnergy, period: Span
                 ) -> tuple[Flag | None, Adjustment | None]:
    tolerance = math.ceil((main.spec.max_permissible + check.spec.max_permissible)
                          * (main.export_wh + main.import_wh))
    difference = check.net_wh - main.net_wh
    if abs(difference) <= tolerance:
        return None, None
    flag = Flag.make(FlagCode.CHECK_METER_DISAGREEMENT, main.spec.device_id, period,
                     check_meter=check.spec.meter_id, main_net_wh=main.net_wh, check_net_wh=check.net_wh,
                     tolerance_wh=tolerance, recalibration_due_ms=period.end_ms + RECALIBRATION_DUE_MS)
    if difference >= 0:
        return flag, None
    return flag, Adjustment(AdjustmentCode.CHECK_METER, check.spec.meter_id, main.spec.meter_id, "net",
                            difference, period,
                            "main and check meter disagree beyond their accuracy classes: "
                            "the lower net is used")


def _settlement(settlement: Settlement, tolerance: Fraction, export_wh: int, import_wh: int, net_wh: int,
                period: Span) -> tuple[Flag | None, Adjustment | None]:
    invoiced_export = wh_from_mwh_down(settlement.export_mwh)
    exceeds = export_wh - invoiced_export > tolerance * invoiced_export
    evidence: dict[str, EvidenceValue] = {
        "metered_export_wh": export_wh, "invoiced_export_wh": invoiced_export,
        "tolerance": str(tolerance), "reference": settlement.reference}
    short = False
    if settlement.import_mwh is not None:
        invoiced_import = wh_from_mwh_up(settlement.import_mwh)
        short = invoiced_import - import_wh > tolerance * invoiced_import
        evidence |= {"metered_import_wh": import_wh, "invoiced_import_wh": invoiced_import}
        if short:
            import_wh = invoiced_import
    if not (exceeds or short):
        return None, None
    flag = Flag(FlagCode.SETTLEMENT_MISMATCH, "", period, tuple(evidence.items()))
    candidate = (invoiced_export if exceeds else export_wh) - import_wh
    if candidate >= net_wh:
        return flag, None
    return flag, Adjustment(AdjustmentCode.SETTLEMENT, "invoice", None, "net", candidate - net_wh, period,
                            "metered electricity exceeds the settlement invoice beyond tolerance: "
                            "the invoiced quantity is used")


def combine(meters: Sequence[MeterEnergy], period: Span, *, settlement: Settlement | None = None,
            settlement_tolerance: Fraction = Fraction(0)) -> NetGeneration:
    """The project's net generation: main meters summed, each cross-checked against its check meter,
    the total cross-checked against the settlement invoice."""
    mains = [m for m in meters if m.spec.role is MeterRole.MAIN]
    if not mains:
        raise ValueError("net generation needs at least one main meter")
    checks = {m.spec.checks: m for m in meters if m.spec.role is MeterRole.CHECK}
    adjustments = [a for m in mains for a in m.adjustments]
    flags = [f for m in meters for f in m.flags]
    net = sum(m.net_wh for m in mains)
    for main in mains:
        check = checks.get(main.spec.meter_id)
        if check is None:
            continue
        flag, adjustment = _check_meter(main, check, period)
        flags += [flag] if flag else []
        if adjustment:
            adjustments.append(adjustment)
            net += adjustment.amount_wh
    if settlement is not None:
        flag, adjustment = _settlement(settlement, settlement_tolerance,
                                       sum(m.export_credited_wh for m in mains),
                                       sum(m.import_charged_wh for m in mains), net, period)
        flags += [flag] if flag else []
        if adjustment:
            adjustments.append(adjustment)
            net += adjustment.amount_wh
    worst = min(mains, key=lambda m: Fraction(m.intervals_present, max(m.intervals_expected, 1)))
    return NetGeneration(sum(m.export_wh for m in mains), sum(m.import_wh for m in mains), net,
                         tuple(adjustments), tuple(flags), tuple(m.summary() for m in meters),
                         worst.intervals_present, worst.intervals_expected)
