"""Device keys: the gateway generates each device's Ed25519 key and it never leaves the gateway.

`KeyStore` is the interface the agent signs through, so a TPM or HSM store can replace the file
store. `FileKeyStore` keeps one seed file per device (mode 0600, created with that mode, atomically)
and refuses any key file that group or others could read.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from edge_agent.errors import InsecureSecretFile, InvalidKeyFile, KeyExists, SecretError, SecretNotFound
from protocol.ids import check_id
from protocol.keys import SEED_BYTES, Ed25519Signer, PublicKeyRecord, Signer

_ALGORITHM = "Ed25519"


class KeyStore(Protocol):
    def signer(self, device_id: str) -> Signer:
        """The signer of `device_id`; raises SecretError when its key is missing or unusable."""
        ...


class FileKeyStore:
    """One seed file per device id, at the paths given (normally each device's `key_file`)."""

    def __init__(self, key_files: Mapping[str, Path]) -> None:
        self._key_files = {check_id(device_id, "device id"): Path(path)
                           for device_id, path in key_files.items()}

    def _path(self, device_id: str) -> Path:
        try:
            return self._key_files[device_id]
        except KeyError:
            raise ValueError(f"no key file configured for device {device_id!r}") from None

    def signer(self, device_id: str) -> Signer:
        path = self._path(device_id)
        raw = read_secret(path, "key file")
        try:
            data = json.loads(raw)
            seed = base64.b64decode(data["seed"], validate=True)
            owner, algorithm = data["device_id"], data["algorithm"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InvalidKeyFile(f"{path} is not a device key file "
                                 "(create one with `mrv edge keygen`)") from None
        if algorithm != _ALGORITHM or len(seed) != SEED_BYTES:
            raise InvalidKeyFile(f"{path} does not hold an Ed25519 seed")
        if owner != device_id:
            raise InvalidKeyFile(f"{path} is the key of device {owner!r}, not {device_id!r}")
        return Ed25519Signer(seed)

    def generate(self, device_id: str) -> PublicKeyRecord:
        """Create the device's key file (refusing to replace one) and return its public record."""
        signer = Ed25519Signer.generate()
        content = json.dumps({"algorithm": _ALGORITHM, "device_id": device_id,
                              "seed": base64.b64encode(signer.seed).decode()}, sort_keys=True) + "\n"
        _create_secret(self._path(device_id), content.encode())
        return PublicKeyRecord(device_id, signer.public_key)


def read_secret(path: Path, what: str) -> bytes:
    """Read a secret file owned by this user with no group/other permissions (key or password)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretNotFound(f"no {what} at {path}") from None
    except OSError as e:
        raise SecretError(f"cannot open {what} {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        # fstat the open file, not the path: nothing can swap the file between check and read.
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise SecretError(f"{what} {path} is not a regular file")
        if mode & 0o077:
            raise InsecureSecretFile(f"{what} {path} has mode {stat.S_IMODE(mode):04o}, so group or others "
                                     f"can access it; fix it with: chmod 600 {path}")
        return f.read()


def _create_secret(path: Path, content: bytes) -> None:
    if path.exists():
        raise KeyExists(f"{path} already exists; refusing to replace a device key (the device's "
                        "identity would change). Move it away first if you really mean to")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # Mode 0600 from the creating open(), never chmod afterwards: the seed is never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        # link() publishes the complete file atomically and, unlike rename, never replaces a key
        # that a concurrent keygen created meanwhile.
        os.link(tmp, path)
    except FileExistsError:
        raise KeyExists(f"{path} already exists; refusing to replace a device key") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_public_record(record: PublicKeyRecord, path: Path) -> None:
    """Write the enrollment record (public, world-readable is fine) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
