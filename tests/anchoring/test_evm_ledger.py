"""The evm ledger against a real anvil: anchor once, look up, verify receipts, confirmations."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from eth_abi.abi import encode
from web3 import Web3

from anchoring import Checkpoint, CompactRange, LedgerUnavailable, ReceiptInvalid, Signer, Verifier, sign_checkpoint
from anchoring.evidence import build_bundle
from anchoring.ledger.evm import ANCHOR_SELECTOR, EVENT_TOPIC, EvmLedger
from anchoring.sequencer import SequencerConfig, anchor, anchor_due, integrate
from managed_services.anvil import DEV_ACCOUNT, Anvil
from tests.anchoring.pg_log import insert_envelopes, new_device
from tests.fix_chain import node_tools_available

ORIGIN = "test.example/mrv-log"
REPO = Path(__file__).resolve().parents[2]


def _note(size: int = 7, byte: int = 1) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, size, bytes([byte]) * 32), Signer.generate(ORIGIN))


def _events(anvil: Anvil, contract: str) -> int:
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    return len(w3.eth.get_logs({"address": Web3.to_checksum_address(contract), "fromBlock": 0,
                                "topics": [EVENT_TOPIC]}))


def test_publish_lookup_verify(anvil: Anvil, anchor_contract: str) -> None:
    ledger = EvmLedger(anvil.rpc_url, anchor_contract, account=DEV_ACCOUNT)
    note = _note()
    assert ledger.lookup(note) is None
    receipt = ledger.publish(note)
    assert receipt.ledger == "evm" and receipt.checkpoint_sha256 == hashlib.sha256(note).digest()
    assert ledger.lookup(note) == receipt
    assert ledger.publish(note) == receipt  # found by its event: not anchored twice
    assert _events(anvil, anchor_contract) == 1
    reader = EvmLedger(anvil.rpc_url, anchor_contract)  # read-only, e.g. the offline verifier
    reader.verify_receipt(receipt, note)
    with pytest.raises(ReceiptInvalid):
        reader.verify_receipt(receipt, _note())
    chain, contract, block, tx = receipt.locator.split(":")
    with pytest.raises(ReceiptInvalid):
        reader.verify_receipt(dataclasses.replace(receipt, locator=f"{chain}:{contract}:{int(block) + 1}:{tx}"), note)
    with pytest.raises(ReceiptInvalid):
        reader.verify_receipt(dataclasses.replace(receipt, locator=f"{int(chain) + 1}:{contract}:{block}:{tx}"), note)


def test_an_event_with_other_values_is_refused(anvil: Anvil, anchor_contract: str) -> None:
    """An event that names the checkpoint's hash but another root does not anchor it."""
    note = _note(5)
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    data = ANCHOR_SELECTOR + encode(["bytes32", "uint64", "bytes32"], [hashlib.sha256(note).digest(), 5, b"\x09" * 32])
    tx = w3.eth.send_transaction({"from": DEV_ACCOUNT, "to": anchor_contract, "data": data})
    w3.eth.wait_for_transaction_receipt(tx)
    ledger = EvmLedger(anvil.rpc_url, anchor_contract)
    found = ledger.lookup(note)
    assert found is not None
    with pytest.raises(ReceiptInvalid, match="not the checkpoint's"):
        ledger.verify_receipt(found, note)


def test_only_the_owner_anchors(anvil: Anvil, anchor_contract: str) -> None:
    stranger = Web3(Web3.HTTPProvider(anvil.rpc_url)).eth.accounts[1]
    with pytest.raises(LedgerUnavailable, match="reverted"):
        EvmLedger(anvil.rpc_url, anchor_contract, account=stranger).publish(_note())


def test_confirmations_are_counted(anvil: Anvil, anchor_contract: str) -> None:
    ledger = EvmLedger(anvil.rpc_url, anchor_contract, account=DEV_ACCOUNT, confirmations=3)
    note = _note()
    receipt = ledger.publish(note)
    with pytest.raises(ReceiptInvalid, match="1 of 3 confirmations"):
        ledger.verify_receipt(receipt, note)
    Web3(Web3.HTTPProvider(anvil.rpc_url)).provider.make_request("anvil_mine", [2])  # type: ignore[arg-type]
    ledger.verify_receipt(receipt, note)


def test_an_unreachable_node_is_unavailable() -> None:
    with pytest.raises(LedgerUnavailable):
        EvmLedger("http://127.0.0.1:9", "0x" + "11" * 20, account=DEV_ACCOUNT, timeout=1, attempts=1).publish(_note())


def test_sequencer_anchors_on_the_chain(pg_conninfo: str, anvil: Anvil, anchor_contract: str) -> None:
    signer = Signer.generate(ORIGIN)
    ledger = EvmLedger(anvil.rpc_url, anchor_contract, account=DEV_ACCOUNT)
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        insert_envelopes(conn, device, 3)
        integrate(conn, CompactRange(), signer, ORIGIN, 100)
        [receipt] = anchor(conn, ledger, "evm")
        assert anchor(conn, ledger, "evm") == []
        status = conn.execute("SELECT status FROM anchors").fetchall()
    assert status == [("confirmed",)] and receipt.locator.count(":") == 3
    assert _events(anvil, anchor_contract) == 1


@pytest.mark.skipif(not node_tools_available(), reason="solcjs needs npm (Node.js)")
def test_checked_in_artifact_matches_a_fresh_compile() -> None:
    done = subprocess.run([sys.executable, "contracts/compile.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_anchor_run_on_the_chain_then_verify_with_rpc(pg_conninfo: str, anvil: Anvil, tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    mrv = [sys.executable, "-m", "mrv_cli"]
    vkey = subprocess.run([*mrv, "anchor", "keygen", "--log-key", str(key), "--origin", ORIGIN],
                          capture_output=True, text=True, check=True).stdout.strip()
    contract = subprocess.run([*mrv, "anchor", "deploy", "--rpc", anvil.rpc_url],
                              capture_output=True, text=True, check=True).stdout.strip()
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        ids = insert_envelopes(conn, device, 4)
    subprocess.run([*mrv, "anchor", "run", "--once", "--conninfo", pg_conninfo, "--log-key", str(key),
                    "--ledger", f"evm:{anvil.rpc_url}", "--evm-contract", contract], check=True, timeout=120)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        bundle = build_bundle(conn, ids[1:2], Verifier.from_vkey(vkey))
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle.encode())
    done = subprocess.run([*mrv, "verify", str(path), "--rpc", anvil.rpc_url, "--vkey", vkey],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  receipt of checkpoint 4 on evm" in done.stdout
    offline = subprocess.run([*mrv, "verify", str(path)], capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0 and "SKIP  receipt of checkpoint 4 on evm" in offline.stdout


def test_an_unconfirmed_anchor_is_confirmed_later(pg_conninfo: str, anvil: Anvil, anchor_contract: str) -> None:
    signer = Signer.generate(ORIGIN)
    ledger = EvmLedger(anvil.rpc_url, anchor_contract, confirmations=2)
    config = SequencerConfig(pg_conninfo, signer, ORIGIN, "evm", anchor_every_seconds=3600)
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        insert_envelopes(conn, device, 2)
        integrate(conn, CompactRange(), signer, ORIGIN, 100)
        assert anchor(conn, ledger, "evm") == []  # mined, one confirmation of two
        assert conn.execute("SELECT status FROM anchors").fetchall() == [("anchored",)]
        assert anchor_due(conn, config)  # nothing new to anchor, but one to confirm
        Web3(Web3.HTTPProvider(anvil.rpc_url)).provider.make_request("anvil_mine", [1])  # type: ignore[arg-type]
        assert len(anchor(conn, ledger, "evm")) == 1
        assert not anchor_due(conn, config)
    assert _events(anvil, anchor_contract) == 1
