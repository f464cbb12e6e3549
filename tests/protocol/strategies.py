"""Hypothesis strategies for valid payloads, shared by the protocol tests."""

from __future__ import annotations

from hypothesis import strategies as st

from protocol import METRICS, MetricKind, Payload, Reading
from protocol.metrics import QUALITY_MASK

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
u63 = st.integers(min_value=0, max_value=2**63 - 1)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    info = draw(st.sampled_from(list(METRICS.values())))
    if info.kind is MetricKind.CUMULATIVE:
        value: int | float = draw(st.integers(min_value=0, max_value=2**53))
    else:
        value = draw(st.one_of(
            st.integers(min_value=int(info.min_value), max_value=int(info.max_value)),
            st.floats(min_value=info.min_value, max_value=info.max_value, allow_nan=False)))
    quality = draw(st.integers(min_value=0, max_value=QUALITY_MASK)) & QUALITY_MASK
    return Reading(int(info.metric), draw(u63), value, quality)


payloads = st.builds(
    Payload,
    device_id=ids,
    seq=u63,
    prev=st.binary(min_size=32, max_size=32),
    device_time_ms=u63,
    readings=st.lists(readings(), min_size=1, max_size=20).map(tuple),
)
