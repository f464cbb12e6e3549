"""The double-claiming guard: one MWh is never claimed under two schemes."""

from __future__ import annotations

import pytest

from mrv_engine import Claim, ClaimedElsewhere, ClaimPolicy, InvalidClaim, Scheme, UndeclaredScheme
from mrv_engine.double_claim import ClaimOutcome, guard
from mrv_engine.results import AdjustmentCode, FlagCode
from mrv_engine.timespan import Span
from tests.mrv_engine.builders import DAY, T0

MONTH = Span(T0, T0 + 30 * DAY)
DECLARED = (Scheme.CCER, Scheme.GEC, Scheme.I_REC)


def _guard(net_wh: int, claims: list[Claim], policy: ClaimPolicy = ClaimPolicy.DEDUCT) -> ClaimOutcome:
    return guard(net_wh, MONTH, claims, credited=Scheme.CCER, declared=DECLARED, policy=policy)


def test_no_other_claims_leaves_everything_eligible() -> None:
    own = Claim(Scheme.CCER, MONTH, 900.0)  # the credited scheme's own issuance is not deducted
    outcome = _guard(1_000_000_000, [own])
    assert (outcome.eligible_wh, outcome.adjustment, outcome.flag) == (1_000_000_000, None, None)


def test_certificates_are_deducted() -> None:
    claims = [Claim(Scheme.GEC, MONTH, 300), Claim(Scheme.I_REC, Span(T0 - DAY, T0 + DAY), 5)]
    outcome = _guard(1_000_000_000, claims)
    assert outcome.eligible_wh == 695_000_000
    assert outcome.adjustment is not None
    assert outcome.adjustment.code is AdjustmentCode.DOUBLE_CLAIM
    assert outcome.adjustment.amount_wh == -305_000_000
    assert outcome.flag is not None and outcome.flag.code is FlagCode.CLAIMED_ELSEWHERE
    assert outcome.flag.evidence_dict()["GEC_wh"] == 300_000_000


def test_claims_outside_the_period_do_not_count() -> None:
    before = Claim(Scheme.GEC, Span(T0 - 30 * DAY, T0), 300)  # touching the start is not overlapping
    assert _guard(1_000_000_000, [before]).eligible_wh == 1_000_000_000


def test_refuse_policy_raises() -> None:
    with pytest.raises(ClaimedElsewhere, match="GEC 300 MWh"):
        _guard(1_000_000_000, [Claim(Scheme.GEC, MONTH, 300)], ClaimPolicy.REFUSE)


def test_over_claimed_generation_credits_nothing() -> None:
    outcome = _guard(200_000_000, [Claim(Scheme.GEC, MONTH, 300)])
    assert outcome.eligible_wh == 0
    assert outcome.flag is not None and outcome.flag.evidence_dict()["over_claimed_wh"] == 100_000_000
    # a net importer stays a net importer
    assert _guard(-5_000, [Claim(Scheme.GEC, MONTH, 1)]).eligible_wh == -5_000


def test_certificates_are_whole_mwh_and_schemes_declared() -> None:
    with pytest.raises(InvalidClaim, match="whole MWh"):
        _guard(1, [Claim(Scheme.GEC, MONTH, 1.5)])
    with pytest.raises(InvalidClaim, match="negative"):
        _guard(1, [Claim(Scheme.CCER, MONTH, -1)])
    with pytest.raises(UndeclaredScheme, match="CDM"):
        _guard(1, [Claim(Scheme.CDM, MONTH, 1)])
