"""The `evm` ledger: checkpoints anchored as `Anchored` events of contracts/CheckpointAnchor.sol.

The event binds SHA-256 of the signed checkpoint note (indexed, so it can be searched) to the
tree size and root hash. The receipt locator is "<chain id>:<contract>:<block>:<tx hash>";
`verify_receipt` reads that transaction's receipt back from a node and compares the event with the
checkpoint, and counts confirmations. `publish` looks the checkpoint up first and again before
each retry, so a timeout after a transaction was mined never anchors the checkpoint twice.
Transactions are sent either from an account the node manages (anvil's dev accounts, or a node's
own unlocked account) or from an account whose private key is in a key file (0600, see
`read_account_key`): then they are signed here and sent raw, and the nonce rule in `publish` keeps
retries and restarts from anchoring a checkpoint twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception, Web3RPCError
from web3.types import TxParams, Wei

from anchoring.checkpoint import Checkpoint
from anchoring.errors import LedgerUnavailable, ReceiptInvalid
from anchoring.keyfile import read_private
from anchoring.ledger import AnchorReceipt

KIND: Final = "evm"
EVENT_TOPIC: Final = Web3.keccak(text="Anchored(bytes32,uint64,bytes32)")
ANCHOR_SELECTOR: Final = Web3.keccak(text="anchor(bytes32,uint64,bytes32)")[:4]
_LOCATOR = re.compile(r"([0-9]+):(0x[0-9a-fA-F]{40}):([0-9]+):(0x[0-9a-f]{64})")


def _checkpoint_of(signed_checkpoint: bytes) -> Checkpoint:
    """The (unverified) checkpoint text of a signed note: what the event must repeat."""
    text, blank, _ = signed_checkpoint.partition(b"\n\n")
    if not blank:
        raise ValueError("not a signed note")
    return Checkpoint.from_text(text.decode() + "\n")


def contract_of(receipt: AnchorReceipt) -> str:
    """The contract address an `evm` receipt names; `ReceiptInvalid` if it is not one."""
    where = _LOCATOR.fullmatch(receipt.locator)
    if receipt.ledger != KIND or where is None:
        raise ReceiptInvalid(f"not an {KIND} receipt: {receipt.ledger} {receipt.locator}")
    return where[2]


def _rpc_errors() -> tuple[type[Exception], ...]:
    import requests  # web3's HTTP transport

    return Web3Exception, requests.RequestException, OSError, TimeoutError


def read_account_key(path: Path) -> LocalAccount:
    """The account whose private key (64 hex digits, 0x optional) is in `path`; `PermissionError`
    if the group or others may access the file."""
    try:
        account: LocalAccount = Account.from_key(read_private(path))
    except (ValueError, TypeError):
        raise ValueError(f"{path} does not hold an account's private key (64 hex digits)") from None
    return account


def _sign(w3: Web3, key: LocalAccount, data: bytes, nonce: int, to: str | None = None) -> SignedTransaction:
    """An EIP-1559 transaction of `key`'s account with `nonce` and `data` (to `to`, or creating a
    contract), signed. `ContractLogicError` if the node's gas estimate finds that it reverts."""
    call: TxParams = {"from": key.address, "data": data}
    fields: TransactionDictType = {"data": data, "nonce": nonce, "chainId": w3.eth.chain_id, "type": 2}
    if to is not None:
        call["to"] = fields["to"] = Web3.to_checksum_address(to)
    tip = w3.eth.max_priority_fee
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas", Wei(0))
    fields.update({"gas": w3.eth.estimate_gas(call), "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base_fee + tip})
    return key.sign_transaction(fields)


def _send_raw(w3: Web3, signed: SignedTransaction) -> HexBytes:
    """Send a signed transaction; the node holding it already (a retry re-sent it) is no error."""
    try:
        return w3.eth.send_raw_transaction(signed.raw_transaction)
    except Web3RPCError as e:
        if "already" not in str(e).lower():  # anvil and geth: "transaction already imported" / "already known"
            raise
    return HexBytes(signed.hash)


def deploy(rpc_url: str, artifact: Path, account: str | None = None, timeout: float = 60.0,
           key: LocalAccount | None = None) -> str:
    """Deploy the contract from its compiled artifact; returns its checksum address. The sender,
    `key`'s account or else `account` (default: the node's first), becomes the contract's owner,
    the only account that may anchor."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    bytecode = json.loads(artifact.read_text())["bytecode"]
    try:
        if key is not None:
            tx = _send_raw(w3, _sign(w3, key, HexBytes(bytecode), w3.eth.get_transaction_count(key.address)))
        else:
            sender = Web3.to_checksum_address(account) if account else w3.eth.accounts[0]
            tx = w3.eth.send_transaction({"from": sender, "data": bytecode})
        receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=timeout)
    except _rpc_errors() as e:
        raise LedgerUnavailable(f"deploy via {rpc_url}: {e}") from e
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise LedgerUnavailable(f"deploy transaction {tx.to_0x_hex()} failed")
    return str(receipt["contractAddress"])


class EvmLedger:
    """A `Ledger` on an EVM chain. Transactions are signed with `key` if given, else sent from
    `account` by the node (default: its first account); reading and verifying need neither."""

    def __init__(self, rpc_url: str, contract: str, *, account: str | None = None, key: LocalAccount | None = None,
                 confirmations: int = 1, from_block: int = 0, timeout: float = 60.0, attempts: int = 3) -> None:
        if confirmations < 1 or attempts < 1:
            raise ValueError("confirmations and attempts must be at least 1")
        if key is not None and account is not None and Web3.to_checksum_address(account) != key.address:
            raise ValueError(f"the key file is account {key.address}, not {account}")
        self._w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        self.rpc_url = rpc_url
        self.contract = Web3.to_checksum_address(contract)
        self._key = key
        self.account = key.address if key else Web3.to_checksum_address(account) if account else None
        self.confirmations = confirmations
        self._from_block = from_block
        self._timeout = timeout
        self._attempts = attempts

    def publish(self, signed_checkpoint: bytes) -> AnchorReceipt:
        """Anchor the checkpoint unless the contract already holds it; retry transient failures.

        With a key, the transaction's nonce is the account's count of MINED transactions, read
        before the lookup that found no anchor; a retry with that nonce unchanged re-sends the very
        same signed transaction. Two transactions with one nonce cannot both be mined, and a
        later nonce is only read after the earlier one was used up, when the lookup that follows
        finds the anchor if that transaction was it: so neither a retry nor a restarted sequencer
        (whose predecessor's transaction may still be pending) anchors a checkpoint twice.
        """
        checkpoint = _checkpoint_of(signed_checkpoint)
        digest = hashlib.sha256(signed_checkpoint).digest()
        data = ANCHOR_SELECTOR + encode(["bytes32", "uint64", "bytes32"],
                                        [digest, checkpoint.size, checkpoint.root_hash])
        error: Exception | None = None
        signed: tuple[int, SignedTransaction] | None = None  # (nonce, transaction) of the last attempt
        for attempt in range(self._attempts):
            nonce = None if self._key is None else self._mined_count(self._key.address)
            found = self.lookup(signed_checkpoint)
            if found is not None:
                return found
            try:
                if self._key is None:
                    sender = self.account or self._w3.eth.accounts[0]
                    tx = self._w3.eth.send_transaction({"from": sender, "to": self.contract, "data": data})
                else:
                    assert nonce is not None
                    if signed is None or signed[0] != nonce:
                        signed = nonce, _sign(self._w3, self._key, data, nonce, self.contract)
                    tx = _send_raw(self._w3, signed[1])
                mined = self._w3.eth.wait_for_transaction_receipt(tx, timeout=self._timeout)
            except ContractLogicError as e:  # refused by the contract: retrying cannot help
                raise LedgerUnavailable(f"anchor reverted (is the sender the owner?): {e}") from e
            except _rpc_errors() as e:
                error = e
                if attempt + 1 < self._attempts:
                    time.sleep(min(2.0**attempt, 10.0))
                continue
            if mined["status"] != 1:
                raise LedgerUnavailable(f"anchor transaction {tx.to_0x_hex()} reverted")
            return self._receipt(mined["blockNumber"], HexBytes(tx), digest)
        raise LedgerUnavailable(f"{self.rpc_url}: {error}")

    def _mined_count(self, address: str) -> int:
        try:
            return self._w3.eth.get_transaction_count(Web3.to_checksum_address(address), "latest")
        except _rpc_errors() as e:
            raise LedgerUnavailable(f"{self.rpc_url}: {e}") from e

    def lookup(self, signed_checkpoint: bytes) -> AnchorReceipt | None:
        """The receipt of the earliest `Anchored` event of this checkpoint, or None."""
        digest = hashlib.sha256(signed_checkpoint).digest()
        try:
            logs = self._w3.eth.get_logs({"address": self.contract, "fromBlock": self._from_block,
                                          "toBlock": "latest", "topics": [EVENT_TOPIC, HexBytes(digest)]})
        except _rpc_errors() as e:
            raise LedgerUnavailable(f"{self.rpc_url}: {e}") from e
        if not logs:
            return None
        first = min(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"]))
        return self._receipt(first["blockNumber"], HexBytes(first["transactionHash"]), digest)

    def verify_receipt(self, receipt: AnchorReceipt, signed_checkpoint: bytes) -> None:
        """Read the receipt's transaction back and check its event against the checkpoint, and that
        its block has at least `confirmations` confirmations; `ReceiptInvalid` otherwise."""
        where = _LOCATOR.fullmatch(receipt.locator)
        if receipt.ledger != KIND or where is None:
            raise ReceiptInvalid(f"not an {KIND} receipt: {receipt.ledger} {receipt.locator}")
        chain_id, contract, block, tx = int(where[1]), Web3.to_checksum_address(where[2]), int(where[3]), where[4]
        digest = hashlib.sha256(signed_checkpoint).digest()
        if digest != receipt.checkpoint_sha256:
            raise ReceiptInvalid("the receipt is for a different checkpoint")
        try:
            checkpoint = _checkpoint_of(signed_checkpoint)
        except ValueError as e:
            raise ReceiptInvalid(f"the checkpoint is unreadable: {e}") from None
        try:
            if self._w3.eth.chain_id != chain_id:
                raise ReceiptInvalid(f"the node serves chain {self._w3.eth.chain_id}, the receipt chain {chain_id}")
            mined = self._w3.eth.get_transaction_receipt(HexBytes(tx))
            head = self._w3.eth.block_number
            anchored_at = self._block_time(block)
        except _rpc_errors() as e:
            raise ReceiptInvalid(f"transaction {tx} not found via {self.rpc_url}: {e}") from e
        if mined["status"] != 1 or mined["blockNumber"] != block:
            raise ReceiptInvalid(f"transaction {tx} failed or is not in block {block}")
        events = [entry for entry in mined["logs"] if entry["address"] == contract
                  and list(entry["topics"]) == [EVENT_TOPIC, HexBytes(digest)]]
        if not events:
            raise ReceiptInvalid(f"transaction {tx} emitted no Anchored event of this checkpoint from {contract}")
        size, root = decode(["uint64", "bytes32"], bytes(events[0]["data"]))
        if (size, root) != (checkpoint.size, checkpoint.root_hash):
            raise ReceiptInvalid(f"the event records size {size} root {root.hex()}, not the checkpoint's")
        if anchored_at != receipt.anchored_at:
            raise ReceiptInvalid(f"block {block} is from {anchored_at.isoformat()}, not {receipt.anchored_at}")
        if head - block + 1 < self.confirmations:
            raise ReceiptInvalid(f"block {block} has {head - block + 1} of {self.confirmations} confirmations")

    def _block_time(self, block: int) -> datetime:
        return datetime.fromtimestamp(self._w3.eth.get_block(block)["timestamp"], UTC)

    def _receipt(self, block: int, tx: HexBytes, digest: bytes) -> AnchorReceipt:
        try:
            chain_id, anchored_at = self._w3.eth.chain_id, self._block_time(block)
        except _rpc_errors() as e:
            raise LedgerUnavailable(f"{self.rpc_url}: {e}") from e
        return AnchorReceipt(KIND, f"{chain_id}:{self.contract}:{block}:{tx.to_0x_hex()}", digest, anchored_at)

