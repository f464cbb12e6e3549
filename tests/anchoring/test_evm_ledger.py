"""The evm ledger against a real anvil: anchor once, look up, verify receipts, confirmations."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from anchoring import Checkpoint, CompactRange, LedgerUnavailable, ReceiptInvalid, Signer, Verifier, sign_checkpoint
from anchoring.cli import ARTIFACT
from anchoring.evidence import build_bundle
from anchoring.ledger.evm import ANCHOR_SELECTOR, EVENT_TOPIC, EvmLedger, deploy, read_account_key
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


def _funded_key_file(anvil: Anvil, path: Path) -> LocalAccount:
    """A new account, unknown to the node, funded, its private key written to `path` (0600)."""
    key: LocalAccount = Account.create()
    Web3(Web3.HTTPProvider(anvil.rpc_url)).provider.make_request(  # type: ignore[arg-type]
        "anvil_setBalance", [key.address, hex(10**18)])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.key.to_0x_hex() + "\n")
    return key


@contextlib.contextmanager
def _manual_mining(w3: Web3) -> Iterator[None]:
    """The chain mines only when told to (`anvil_mine`) inside the block."""
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        yield
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]


def test_a_key_file_must_be_private_and_hold_a_key(tmp_path: Path) -> None:
    path = tmp_path / "evm.key"
    key: LocalAccount = Account.create()
    path.write_text(key.key.to_0x_hex() + "\n")
    path.chmod(0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        read_account_key(path)
    path.chmod(0o600)
    assert read_account_key(path).address == key.address
    path.write_text("not a key\n")
    with pytest.raises(ValueError, match="does not hold") as refused:
        read_account_key(path)
    assert "not a key" not in str(refused.value)


def test_a_key_file_account_deploys_and_anchors(anvil: Anvil, tmp_path: Path) -> None:
    key = _funded_key_file(anvil, tmp_path / "evm.key")
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    assert key.address not in w3.eth.accounts  # so every transaction below was signed here
    contract = deploy(anvil.rpc_url, ARTIFACT, key=read_account_key(tmp_path / "evm.key"))
    owner = w3.eth.call({"to": Web3.to_checksum_address(contract), "data": Web3.keccak(text="owner()")[:4]})
    assert owner[-20:] == bytes.fromhex(key.address[2:])
    ledger = EvmLedger(anvil.rpc_url, contract, key=key)
    note = _note()
    receipt = ledger.publish(note)
    ledger.verify_receipt(receipt, note)
    tx = w3.eth.get_transaction(receipt.locator.rsplit(":", 1)[1])
    assert tx["from"] == key.address and tx["nonce"] == 1
    assert ledger.publish(note) == receipt and _events(anvil, contract) == 1
    with pytest.raises(LedgerUnavailable, match="reverted"):  # the node's own account does not own it
        EvmLedger(anvil.rpc_url, contract, account=DEV_ACCOUNT).publish(_note(8))
    with pytest.raises(ValueError, match="not"):
        EvmLedger(anvil.rpc_url, contract, key=key, account=DEV_ACCOUNT)


def test_retries_and_a_restart_never_anchor_twice(anvil: Anvil, tmp_path: Path) -> None:
    """A transaction that is sent but not mined in time: the retries, and a new sequencer after a
    restart, re-send that same transaction; once mined, the checkpoint is anchored once."""
    key = _funded_key_file(anvil, tmp_path / "evm.key")
    contract = deploy(anvil.rpc_url, ARTIFACT, key=key)
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    note = _note(9)
    with _manual_mining(w3):
        for attempts in (2, 1):  # the first sequencer retries once; then a restarted one tries
            with pytest.raises(LedgerUnavailable):
                EvmLedger(anvil.rpc_url, contract, key=key, timeout=1, attempts=attempts).publish(note)
            pool = w3.provider.make_request("txpool_status", [])  # type: ignore[arg-type]
            assert pool["result"]["pending"] == "0x1"
        w3.provider.make_request("anvil_mine", [1])  # type: ignore[arg-type]
    receipt = EvmLedger(anvil.rpc_url, contract, key=key).lookup(note)
    assert receipt is not None and EvmLedger(anvil.rpc_url, contract, key=key).publish(note) == receipt
    assert _events(anvil, contract) == 1 and w3.eth.get_transaction_count(key.address) == 2


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


@pytest.mark.parametrize("sender", ["node account", "key file"])
def test_anchor_run_on_the_chain_then_verify_with_rpc(pg_conninfo: str, anvil: Anvil, tmp_path: Path,
                                                      sender: str) -> None:
    key = tmp_path / "log.key"
    mrv = [sys.executable, "-m", "mrv_cli"]
    vkey = subprocess.run([*mrv, "anchor", "keygen", "--log-key", str(key), "--origin", ORIGIN],
                          capture_output=True, text=True, check=True).stdout.strip()
    send_with: list[str] = []
    if sender == "key file":
        _funded_key_file(anvil, tmp_path / "evm.key")
        send_with = ["--evm-key", str(tmp_path / "evm.key")]
    contract = subprocess.run([*mrv, "anchor", "deploy", "--rpc", anvil.rpc_url, *send_with],
                              capture_output=True, text=True, check=True).stdout.strip()
    device = new_device(pg_conninfo)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        ids = insert_envelopes(conn, device, 4)
    subprocess.run([*mrv, "anchor", "run", "--once", "--conninfo", pg_conninfo, "--log-key", str(key),
                    "--ledger", f"evm:{anvil.rpc_url}", "--evm-contract", contract, *send_with],
                   check=True, timeout=120)
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
