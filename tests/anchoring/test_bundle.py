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
        tuple(BundleEnvelope("meter-1", i, raw, i, sizes[1], tuple(log.inclusion_proof(i, sizes[1])))
              for i, raw in enumerate(raws)),
    ), signer


def _failed(bundle: Bundle, **kwargs: object) -> list[str]:
    return [item.item for item in verify_bundle(bundle, **kwargs).failures]  # type: ignore[arg-type]


def test_round_trip() -> None:
    bundle, _ = _bundle()
    data = bundle.encode()
    assert Bundle.decode(data) == bundle
    assert Bundle.decode(data).encode() == data
    assert json.loads(data)["version"] == 1


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


@pytest.mark.parametrize("data", [b"[]", b"{", b'{"format":"mrv-evidence-bundle","version":2}',
                                  b'{"format":"mrv-evidence-bundle","version":1,"log":{}}'])
def test_malformed_bundles_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedBundle):
        Bundle.decode(data)


def test_receipt_json_round_trip() -> None:
    receipt = AnchorReceipt("evm", "31337:0x" + "ab" * 20 + ":7:0x" + "cd" * 32, b"\x02" * 32,
                            dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC))
    assert AnchorReceipt.from_json(json.loads(json.dumps(receipt.to_json()))) == receipt
    for bad in ({}, [], {**receipt.to_json(), "checkpoint_sha256": "ab"},
                {**receipt.to_json(), "anchored_at": "2026-03-04T05:06:07"}):
        with pytest.raises(ReceiptInvalid):
            AnchorReceipt.from_json(bad)
