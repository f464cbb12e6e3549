from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from anchoring.checkpoint import Checkpoint, sign_checkpoint
from anchoring.errors import LedgerCorrupted, LedgerError, LedgerUnavailable, ReceiptInvalid
from anchoring.ledger import Ledger
from anchoring.ledger.local import GENESIS, LocalLedger
from anchoring.note import Signer

LOG = Signer.generate("mrv.example/log")
CHECKPOINTS = [sign_checkpoint(Checkpoint("mrv.example/log", n, bytes([n]) * 32), LOG) for n in range(1, 6)]


def _clock() -> Iterator[datetime]:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    while True:
        yield moment
        moment += timedelta(seconds=1, microseconds=1500)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    ticks = _clock()
    ledger = LocalLedger.open(tmp_path / "anchors.jsonl", create=True, clock=lambda: next(ticks))
    for checkpoint in CHECKPOINTS:
        ledger.publish(checkpoint)
    return ledger.path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_is_a_ledger(tmp_path: Path) -> None:
    ledger: Ledger = LocalLedger.open(tmp_path / "l.jsonl", create=True)
    assert ledger.lookup(CHECKPOINTS[0]) is None


def test_publish_lookup_and_verify_survive_reopening(tmp_path: Path) -> None:
    ticks = _clock()
    ledger = LocalLedger.open(tmp_path / "anchors.jsonl", create=True, clock=lambda: next(ticks))
    receipts = [ledger.publish(c) for c in CHECKPOINTS]
    assert receipts[1].locator.startswith("1:")
    assert receipts[1].anchored_at == datetime(2025, 1, 1, 0, 0, 1, 1000, tzinfo=UTC)  # milliseconds kept
    reopened = LocalLedger.open(ledger.path)
    assert len(reopened) == len(CHECKPOINTS)
    for checkpoint, receipt in zip(CHECKPOINTS, receipts, strict=True):
        assert reopened.lookup(checkpoint) == receipt
        reopened.verify_receipt(receipt, checkpoint)


def test_records_are_canonical_and_chained(path: Path) -> None:
    records = [json.loads(line) for line in _lines(path)]
    assert records[0]["prev"] == GENESIS
    assert [r["seq"] for r in records] == list(range(len(CHECKPOINTS)))
    assert records[0]["checkpoint"].encode() == CHECKPOINTS[0]
    assert records[0]["time"] == "2025-01-01T00:00:00.000Z"


def test_republishing_appends_and_lookup_finds_the_first(path: Path) -> None:
    ledger = LocalLedger.open(path)
    first = ledger.lookup(CHECKPOINTS[0])
    again = ledger.publish(CHECKPOINTS[0])
    assert first is not None and again != first
    assert ledger.lookup(CHECKPOINTS[0]) == first


def test_receipts_that_do_not_match_are_refused(path: Path) -> None:
    ledger = LocalLedger.open(path)
    receipt = ledger.publish(b"a note\n")
    ledger.verify_receipt(receipt, b"a note\n")
    wrong = [
        dataclasses.replace(receipt, ledger="evm"),
        dataclasses.replace(receipt, locator="99:" + "0" * 64),
        dataclasses.replace(receipt, locator="5:" + "0" * 64),
        dataclasses.replace(receipt, locator="05:" + receipt.locator.split(":")[1]),
        dataclasses.replace(receipt, anchored_at=receipt.anchored_at + timedelta(seconds=1)),
    ]
    for bad in wrong:
        with pytest.raises(ReceiptInvalid):
            ledger.verify_receipt(bad, b"a note\n")
    with pytest.raises(ReceiptInvalid, match="different checkpoint"):
        ledger.verify_receipt(receipt, b"another note\n")


def test_an_edited_last_record_fails_its_receipt(path: Path) -> None:
    receipt = LocalLedger.open(path).lookup(CHECKPOINTS[-1])
    assert receipt is not None
    lines = _lines(path)
    lines[-1] = lines[-1].replace(b'"time":"2025', b'"time":"2024')
    path.write_bytes(b"".join(lines))
    with pytest.raises(ReceiptInvalid):
        LocalLedger.open(path).verify_receipt(receipt, CHECKPOINTS[-1])


@pytest.mark.parametrize(
    ("tamper", "line", "reason"),
    [
        (lambda ls: [ls[0], ls[1], ls[2].replace(b'"seq":2', b'"seq":7'), *ls[3:]], 3, "seq is 7"),
        (
            lambda ls: [*ls[:1], ls[1].replace(b"mrv.example", b"mrv.exampla"), *ls[2:]],
            3,
            "prev does not match",
        ),
        (lambda ls: [ls[0], *ls[2:]], 2, "seq is 2"),
        (lambda ls: [ls[1], ls[0], *ls[2:]], 1, "seq is 1"),
        (lambda ls: [*ls[:3], ls[3].replace(b'{"checkpoint"', b'{ "checkpoint"'), *ls[4:]], 4, "canonical"),
        (lambda ls: [*ls[:4], ls[4][:-1]], 5, "incomplete"),
        (lambda ls: [*ls, b"not json\n"], 6, "not a JSON record"),
        (lambda ls: [*ls, b'{"seq":5}\n'], 6, "exactly the fields"),
        (lambda ls: [*ls[:4], ls[4].replace(b'Z"}', b'+00:00"}')], 5, "not a UTC timestamp"),
    ],
)
def test_a_tampered_file_is_refused_naming_the_line(
    path: Path, tamper: object, line: int, reason: str
) -> None:
    assert callable(tamper)
    path.write_bytes(b"".join(tamper(_lines(path))))
    with pytest.raises(LedgerCorrupted, match=reason) as info:
        LocalLedger.open(path)
    assert (info.value.path, info.value.line) == (path, line)
    assert f"line {line}:" in str(info.value)


def test_another_writer_is_detected(path: Path) -> None:
    first, second = LocalLedger.open(path), LocalLedger.open(path)
    first.publish(b"one\n")
    with pytest.raises(LedgerError, match="another writer"):
        second.publish(b"two\n")
    LocalLedger.open(path)  # the file is still a valid chain


def test_a_failed_append_is_unavailable_and_leaves_no_record(path: Path) -> None:
    ledger = LocalLedger.open(path)
    path.unlink()
    with pytest.raises(LedgerUnavailable):
        ledger.publish(b"lost\n")
    assert len(ledger) == len(CHECKPOINTS)
    assert ledger.lookup(b"lost\n") is None


def test_missing_or_unreadable_files_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable):
        LocalLedger.open(tmp_path / "missing.jsonl")
    with pytest.raises(LedgerUnavailable):
        LocalLedger.open(tmp_path / "no" / "dir.jsonl", create=True)
