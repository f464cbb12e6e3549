from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from edge_agent.errors import InsecureSecretFile, InvalidKeyFile, KeyExists, SecretNotFound
from edge_agent.keystore import FileKeyStore, KeyStore, read_secret, write_public_record
from protocol import PublicKeyRecord, verify_signature


def test_generate_creates_a_0600_key_and_a_matching_public_record(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "inv-1.key"
    store = FileKeyStore({"inv-1": path})
    record = store.generate("inv-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    keystore: KeyStore = store  # the file store implements the interface the agent signs through
    signer = keystore.signer("inv-1")
    assert (signer.public_key, signer.kid) == (record.public_key, record.kid)
    assert verify_signature(record.public_key, b"m", signer.sign(b"m"))
    write_public_record(record, tmp_path / "inv-1.pub.json")
    assert PublicKeyRecord.from_json((tmp_path / "inv-1.pub.json").read_text()) == record
    assert [p.name for p in path.parent.iterdir()] == ["inv-1.key"]  # no temporary file left behind


def test_the_key_is_0600_from_creation_even_with_a_permissive_umask(tmp_path: Path) -> None:
    """The mode comes from open(), so no moment exists in which others could read the seed."""
    old = os.umask(0)
    try:
        FileKeyStore({"d": tmp_path / "d.key"}).generate("d")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d.key").stat().st_mode) == 0o600


def test_generate_never_replaces_a_key(tmp_path: Path) -> None:
    store = FileKeyStore({"inv-1": tmp_path / "inv-1.key"})
    store.generate("inv-1")
    before = (tmp_path / "inv-1.key").read_bytes()
    with pytest.raises(KeyExists, match="refusing to replace"):
        store.generate("inv-1")
    assert (tmp_path / "inv-1.key").read_bytes() == before


def test_concurrent_keygens_leave_exactly_one_key(tmp_path: Path) -> None:
    store = FileKeyStore({"inv-1": tmp_path / "inv-1.key"})
    outcomes: list[str] = []

    def keygen() -> None:
        try:
            store.generate("inv-1")
            outcomes.append("created")
        except KeyExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=keygen) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("created") == 1


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "inv-1.key"
    FileKeyStore({"inv-1": path}).generate("inv-1")
    path.chmod(mode)
    with pytest.raises(InsecureSecretFile, match=f"mode {mode:04o}.*chmod 600"):
        FileKeyStore({"inv-1": path}).signer("inv-1")


def test_missing_foreign_and_garbled_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretNotFound, match="no key file"):
        FileKeyStore({"inv-1": tmp_path / "absent.key"}).signer("inv-1")
    FileKeyStore({"inv-2": tmp_path / "inv-2.key"}).generate("inv-2")
    with pytest.raises(InvalidKeyFile, match="key of device 'inv-2'"):
        FileKeyStore({"inv-1": tmp_path / "inv-2.key"}).signer("inv-1")
    garbled = tmp_path / "garbled.key"
    garbled.write_text("not json")
    garbled.chmod(0o600)
    with pytest.raises(InvalidKeyFile, match="not a device key file"):
        FileKeyStore({"inv-1": garbled}).signer("inv-1")


def test_the_seed_never_appears_in_logs_or_reprs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "inv-1.key"
    store = FileKeyStore({"inv-1": path})
    store.generate("inv-1")
    signer = store.signer("inv-1")
    seed_b64 = json.loads(path.read_text())["seed"]
    seen = caplog.text + repr(signer) + repr(store)
    assert seed_b64 not in seen and seed_b64[:12] not in seen


def test_read_secret_applies_the_same_rules_to_password_files(tmp_path: Path) -> None:
    password = tmp_path / "inv-1.password"
    password.write_text("s3cret\n")
    password.chmod(0o644)
    with pytest.raises(InsecureSecretFile):
        read_secret(password, "password file")
    password.chmod(0o600)
    assert read_secret(password, "password file") == b"s3cret\n"


def test_device_ids_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid device id"):
        FileKeyStore({"a/b": tmp_path / "x.key"})
