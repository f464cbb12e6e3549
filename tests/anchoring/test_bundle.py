"""Evidence bundles, pure: encode/decode round trip, and the verifier's verdict on each kind of tampering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from anchoring import Checkpoint, MalformedBundle, MemoryLog, ReceiptInvalid, Signer, leaf_hash, sign_checkpoint
from anchoring.bundle import Bundle, BundleCheckpoint, BundleEnvelope, ConsistencyLink, DeviceKey
from anchoring.ledger import AnchorReceipt
from anchoring.verifier import verify_bundle
from tests.ingest.helpers import T0, Device

ORIGIN = "test.example/mrv-log"
KEY_FROM = dt.datetime.fromtimestamp(T0 / 1000, dt.UTC) - dt.timedelta(days=1)
ARRIVAL_DELAY = dt.timedelta(seconds=5)  # each envelope of `_bundle` arrives this long after its device time


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _bundle(count: int = 5, sizes: tuple[int, int] = (3, 5)) -> tuple[Bundle, Signer]:
    """`count` envelopes of one device, proved against the checkpoint of size sizes[1]."""
    device = Device("meter-1", "plant-1")
    raws = [device.next(T0 + i * 60_000, n=2) for i in range(count)]
    log = MemoryLog([leaf_hash(r) for r in raws])
    signer = Signer.generate(ORIGIN)
    notes = [sign_checkpoint(Checkpoint(ORIGIN, s, log.root(s)), signer) for s in sizes]
    receipt = AnchorReceipt("local", "0:" + "ab" * 32, b"\x01" * 32, dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    return Bundle(
        ORIGIN, signer.verifier.vkey,
        (BundleCheckpoint(notes[0], (receipt,)), BundleCheckpoint(notes[1])),
        (ConsistencyLink(sizes[0], sizes[1], tuple(log.consistency_proof(*sizes))),),
        (DeviceKey("meter-1", device.signer.kid, device.signer.public_key, KEY_FROM),),
        tuple(BundleEnvelope("meter-1", i, raw, i, sizes[1], tuple(log.inclusion_proof(i, sizes[1])),
                             _at(T0 + i * 60_000) + ARRIVAL_DELAY)
              for i, raw in enumerate(raws)),
    ), signer


def _failed(bundle: Bundle, **kwargs: object) -> list[str]:
    return [item.item for item in verify_bundle(bundle, **kwargs).failures]  # type: ignore[arg-type]


def test_round_trip() -> None:
    bundle, _ = _bundle()
    data = bundle.encode()
    assert Bundle.decode(data) == bundle
    assert Bundle.decode(data).encode() == data
    doc = json.loads(data)
    assert doc["version"] == 2
    assert doc["envelopes"][1]["received_at"] == "2026-01-01T00:01:05+00:00"
    # Any UTC offset decodes to the same moment.
    shifted = dataclasses.replace(bundle.envelopes[0], received_at=bundle.envelopes[0].received_at.astimezone(
        dt.timezone(dt.timedelta(hours=8))))
    again = Bundle.decode(dataclasses.replace(bundle, envelopes=(shifted,)).encode())
    assert again.envelopes[0].received_at == bundle.envelopes[0].received_at


def test_a_good_bundle_verifies() -> None:
    bundle, signer = _bundle()
    report = verify_bundle(bundle, trusted_vkey=signer.verifier.vkey)
    assert report.ok
    names = [i.item for i in report.items]
    assert names[:3] == ["log key", "checkpoint 3", "receipt of checkpoint 3 on local"]
    assert "consistency 3 -> 5" in names and "envelope meter-1/4 (leaf 4)" in names
    skipped = [i.item for i in report.items if i.ok is None]
    assert skipped == ["receipt of checkpoint 3 on local"]  # no ledger given


def test_selective_disclosure_of_one_envelope() -> None:
    bundle, _ = _bundle()
    single = dataclasses.replace(bundle, envelopes=bundle.envelopes[2:3])
    assert verify_bundle(Bundle.decode(single.encode())).ok


def test_altered_envelope_is_named() -> None:
    bundle, _ = _bundle()
    victim = bundle.envelopes[3]
    raw = bytearray(victim.raw)
    raw[-70] ^= 1  # inside the payload, before the signature
    altered = dataclasses.replace(victim, raw=bytes(raw))
    envelopes = (*bundle.envelopes[:3], altered, *bundle.envelopes[4:])
    assert _failed(dataclasses.replace(bundle, envelopes=envelopes)) == ["envelope meter-1/3 (leaf 3)"]


def test_a_proof_for_the_wrong_leaf_fails() -> None:
    bundle, _ = _bundle()
    swapped = dataclasses.replace(bundle.envelopes[1], proof=bundle.envelopes[0].proof)
    assert _failed(dataclasses.replace(bundle, envelopes=(swapped,))) == ["envelope meter-1/1 (leaf 1)"]


def test_key_outside_its_window_fails() -> None:
    bundle, _ = _bundle()
    key = dataclasses.replace(bundle.keys[0], revoked_at=KEY_FROM + dt.timedelta(days=1, minutes=2, seconds=30))
    failed = _failed(dataclasses.replace(bundle, keys=(key,)))
    assert failed == ["envelope meter-1/3 (leaf 3)", "envelope meter-1/4 (leaf 4)"]


def _arriving(bundle: Bundle, leaf: int, at: dt.datetime) -> Bundle:
    """`bundle` with envelope `leaf` arriving at `at` instead."""
    late = dataclasses.replace(bundle.envelopes[leaf], received_at=at)
    return dataclasses.replace(bundle, envelopes=(*bundle.envelopes[:leaf], late, *bundle.envelopes[leaf + 1:]))


@pytest.mark.parametrize("closing", ["valid_until", "revoked_at"])
def test_key_must_be_valid_at_arrival_too(closing: str) -> None:
    bundle, _ = _bundle()
    end = _at(T0) + dt.timedelta(minutes=10)  # after every device time (the last is T0 + 4 min)
    key = (dataclasses.replace(bundle.keys[0], valid_until=end) if closing == "valid_until"
           else dataclasses.replace(bundle.keys[0], revoked_at=end))
    closed = dataclasses.replace(bundle, keys=(key,))
    assert verify_bundle(closed).ok  # every envelope arrived 5 s after its device time
    inside = _arriving(closed, 2, end - dt.timedelta(milliseconds=1))
    assert verify_bundle(Bundle.decode(inside.encode())).ok
    late = Bundle.decode(_arriving(closed, 2, end + dt.timedelta(minutes=1)).encode())
    report = verify_bundle(late)
    assert [(f.item, f.detail.split(" (")[0]) for f in report.failures] == [
        ("envelope meter-1/2 (leaf 2)", f"key {key.kid.hex()} was not valid at arrival 2026-01-01T00:11:00+00:00")]
    assert f"{'until' if closing == 'valid_until' else 'revoked at'} 2026-01-01T00:10:00+00:00" in \
        report.failures[0].detail
    at_the_end = _arriving(closed, 2, end)  # the window is half-open: its end is outside
    assert _failed(at_the_end) == ["envelope meter-1/2 (leaf 2)"]


def test_key_must_be_valid_at_arrival_from_its_start() -> None:
    bundle, _ = _bundle()
    early = _arriving(bundle, 0, KEY_FROM - dt.timedelta(seconds=1))  # an arrival before enrollment
    assert _failed(early) == ["envelope meter-1/0 (leaf 0)"]
    assert "not valid at arrival" in verify_bundle(early).failures[0].detail


def test_checkpoints_must_be_signed_by_the_trusted_key_and_consistent() -> None:
    bundle, _ = _bundle()
    other = Signer.generate(ORIGIN).verifier.vkey
    assert "log key" in _failed(bundle, trusted_vkey=other)
    unlinked = dataclasses.replace(bundle, consistency=())
    assert _failed(unlinked) == ["consistency 3 -> 5"]
    forged, _ = _bundle()  # another log's checkpoint of size 5
    mixed = dataclasses.replace(bundle, checkpoints=(bundle.checkpoints[0], forged.checkpoints[1]))
    failed = _failed(mixed)
    assert failed[0] == "checkpoint #1" and "envelope meter-1/0 (leaf 0)" in failed


def test_receipts_go_through_the_ledger_check() -> None:
    bundle, _ = _bundle()
    seen: list[str] = []
    assert verify_bundle(bundle, check_receipt=lambda r, note: seen.append(r.locator) is None).ok
    assert seen == ["0:" + "ab" * 32]


@pytest.mark.parametrize("data", [b"[]", b"{", b'{"format":"mrv-evidence-bundle","version":3}',
                                  b'{"format":"mrv-evidence-bundle","version":2,"log":{}}'])
def test_malformed_bundles_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedBundle):
        Bundle.decode(data)


def _edited(edit: str) -> bytes:
    """A good bundle's JSON with its first envelope (or the document, for "version") edited."""
    bundle, _ = _bundle(1, (1, 1))
    doc = json.loads(bundle.encode())
    envelope = doc["envelopes"][0]
    if edit == "version 1":  # the format before arrival times: nothing to check the key at arrival with
        doc["version"] = 1
        del envelope["received_at"]
    elif edit == "missing":
        del envelope["received_at"]
    elif edit == "null":
        envelope["received_at"] = None
    elif edit == "naive":
        envelope["received_at"] = "2026-01-01T00:00:05"
    elif edit == "garbage":
        envelope["received_at"] = "yesterday"
    elif edit == "naive key":
        doc["keys"][0]["valid_from"] = "2025-12-31T00:00:00"
    return json.dumps(doc).encode()


@pytest.mark.parametrize("edit", ["version 1", "missing", "null", "naive", "garbage", "naive key"])
def test_arrival_times_are_decoded_strictly(edit: str) -> None:
    assert Bundle.decode(_edited("none")).envelopes[0].received_at == _at(T0) + ARRIVAL_DELAY
    with pytest.raises(MalformedBundle, match="version 1 is not supported" if edit == "version 1" else
                       "keys" if edit == "naive key" else "envelopes"):
        Bundle.decode(_edited(edit))


def test_receipt_json_round_trip() -> None:
    receipt = AnchorReceipt("evm", "31337:0x" + "ab" * 20 + ":7:0x" + "cd" * 32, b"\x02" * 32,
                            dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC))
    assert AnchorReceipt.from_json(json.loads(json.dumps(receipt.to_json()))) == receipt
    for bad in ({}, [], {**receipt.to_json(), "checkpoint_sha256": "ab"},
                {**receipt.to_json(), "anchored_at": "2026-03-04T05:06:07"}):
        with pytest.raises(ReceiptInvalid):
            AnchorReceipt.from_json(bad)
