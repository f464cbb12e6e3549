"""The double-claiming guard: one MWh is never claimed under two schemes."""

from __future__ import annotations

import datetime as dt

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


# 2025-01-01 00:00 China time (UTC+8)
END_OF_2024_CHINA = int(dt.datetime(2024, 12, 31, 16, tzinfo=dt.UTC).timestamp() * 1000)
DECEMBER_2024 = Span(END_OF_2024_CHINA - 31 * DAY, END_OF_2024_CHINA)


def test_i_rec_up_to_the_end_of_2024_china_time_is_deducted() -> None:
    claim = Claim(Scheme.I_REC, DECEMBER_2024, 5, "I-REC 2024-12")
    outcome = guard(1_000_000_000, DECEMBER_2024, [claim], credited=Scheme.CCER, declared=DECLARED,
                    policy=ClaimPolicy.DEDUCT)
    assert outcome.eligible_wh == 995_000_000


@pytest.mark.parametrize("end_ms", [END_OF_2024_CHINA + 1, END_OF_2024_CHINA + DAY])
def test_i_rec_is_not_issued_for_chinese_generation_after_2024(end_ms: int) -> None:
    late = Claim(Scheme.I_REC, Span(DECEMBER_2024.start_ms, end_ms), 5, "I-REC 2024-12")
    with pytest.raises(InvalidClaim, match=r"I-REC 2024-12.*I-REC is not issued for Chinese generation after 2024"):
        _guard(1_000_000_000, [late])  # refused even though it does not overlap the period
    # GEC continues after 2024
    assert _guard(1_000_000_000, [Claim(Scheme.GEC, Span(T0, end_ms), 5)]).eligible_wh == 995_000_000
