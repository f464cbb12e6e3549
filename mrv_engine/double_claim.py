"""The double-claiming guard: one MWh is never counted under two schemes.

A generation source's electricity may be claimed as China GEC or I-REC certificates (1 certificate =
1 MWh) or credited as emission reductions (CCER, CDM). From 2024, deep-offshore wind and solar thermal
choose GEC or CCER for the same generation. Given the claims made under other schemes for periods that
overlap the monitoring period, the guard either refuses (policy `refuse`) or deducts the claimed MWh from
the electricity credited (policy `deduct`). A claim that only partly overlaps the period is deducted in
full: the claim does not say which of its MWh fall inside, and deducting all of them is conservative.
Claims under the scheme being credited are that scheme's own issuance and are not deducted here.

A claim is refused as invalid if its scheme is not declared by the project, its MWh are negative, a
certificate claim is not whole MWh, or it is an I-REC claim for a period ending after 2025-01-01 00:00
China time (UTC+8): I-REC is not issued for Chinese generation after 2024 (METHODOLOGY.md, Certificates).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from mrv_engine.errors import ClaimedElsewhere, InvalidClaim, UndeclaredScheme
from mrv_engine.results import Adjustment, AdjustmentCode, Flag, FlagCode
from mrv_engine.timespan import Span, day_start_ms
from mrv_engine.units import exact, wh_from_mwh_up


class Scheme(enum.StrEnum):
    CDM = "CDM"
    CCER = "CCER"
    GEC = "GEC"
    I_REC = "I-REC"


# Certificate schemes issue whole certificates of 1 MWh each.
CERTIFICATE_SCHEMES = frozenset({Scheme.GEC, Scheme.I_REC})

CHINA_UTC_OFFSET_MINUTES = 480
# I-REC is not issued for Chinese generation after 2024: no I-REC claim may end after this instant.
I_REC_CHINA_END_MS = day_start_ms(dt.date(2025, 1, 1), CHINA_UTC_OFFSET_MINUTES)


class ClaimPolicy(enum.StrEnum):
    REFUSE = "refuse"
    DEDUCT = "deduct"


@dataclass(frozen=True)
class Claim:
    """MWh of this source's generation claimed under `scheme` for `period` (e.g. GEC issued)."""

    scheme: Scheme
    period: Span
    mwh: float
    reference: str = ""


@dataclass(frozen=True)
class ClaimOutcome:
    eligible_wh: int
    adjustment: Adjustment | None
    flag: Flag | None


def validate_claim(claim: Claim, declared: Collection[Scheme]) -> None:
    """Raise UndeclaredScheme or InvalidClaim if `claim` cannot be a claim of this project."""
    if claim.scheme not in declared:
        raise UndeclaredScheme(f"a claim under {claim.scheme} ({claim.reference or 'no reference'}) but the "
                               f"project declares only {', '.join(sorted(declared))}")
    if claim.mwh < 0:
        raise InvalidClaim(f"a {claim.scheme} claim of {claim.mwh} MWh is negative")
    if claim.scheme in CERTIFICATE_SCHEMES and exact(claim.mwh).denominator != 1:
        raise InvalidClaim(f"{claim.scheme} certificates are whole MWh, got {claim.mwh} MWh")
    if claim.scheme is Scheme.I_REC and claim.period.end_ms > I_REC_CHINA_END_MS:
        end = dt.datetime.fromtimestamp(claim.period.end_ms / 1000,
                                        dt.timezone(dt.timedelta(minutes=CHINA_UTC_OFFSET_MINUTES)))
        raise InvalidClaim(f"an I-REC claim ({claim.reference or 'no reference'}) ends at {end.isoformat()}, "
                           "after 2024: I-REC is not issued for Chinese generation after 2024 "
                           "(METHODOLOGY.md, Certificates)")


def guard(net_wh: int, period: Span, claims: Sequence[Claim], *, credited: Scheme,
          declared: Collection[Scheme], policy: ClaimPolicy) -> ClaimOutcome:
    """The part of `net_wh` that `credited` may count, given the other schemes' claims."""
    for claim in claims:
        validate_claim(claim, declared)
    elsewhere = [c for c in claims if c.scheme != credited and c.period.overlaps(period)]
    if not elsewhere:
        return ClaimOutcome(net_wh, None, None)
    by_scheme: dict[str, int] = {}
    for claim in elsewhere:
        by_scheme[claim.scheme.value] = by_scheme.get(claim.scheme.value, 0) + wh_from_mwh_up(claim.mwh)
    claimed_wh = sum(by_scheme.values())
    if policy is ClaimPolicy.REFUSE:
        listed = ", ".join(f"{scheme} {wh / 1e6:g} MWh" for scheme, wh in sorted(by_scheme.items()))
        raise ClaimedElsewhere(f"generation of this period is already claimed ({listed}); crediting it under "
                               f"{credited} would count it twice (set the policy to 'deduct' to subtract it)")
    eligible = min(net_wh, max(0, net_wh - claimed_wh))
    flag = Flag.make(FlagCode.CLAIMED_ELSEWHERE, "", period, claimed_wh=claimed_wh,
                     over_claimed_wh=max(0, claimed_wh - max(net_wh, 0)),
                     **{f"{scheme}_wh": wh for scheme, wh in sorted(by_scheme.items())})
    adjustment = None
    if eligible < net_wh:
        adjustment = Adjustment(AdjustmentCode.DOUBLE_CLAIM, ",".join(sorted(by_scheme)), None, "net",
                                eligible - net_wh, period,
                                f"generation claimed under other schemes is not credited under {credited}")
    return ClaimOutcome(eligible, adjustment, flag)
