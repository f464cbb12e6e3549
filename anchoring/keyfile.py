"""Keys on disk, each in a file only its owner can read: the log's signing key (one C2SP signer key
string) and, for the evm ledger, the sending account's private key (see anchoring.ledger.evm)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from anchoring.note import Signer


def write_log_key(path: Path, signer: Signer) -> None:
    """Create `path` (0600) holding the key; refuses to overwrite an existing key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey + "\n")


def read_private(path: Path) -> str:
    """The text of `path`, stripped; `PermissionError` if the group or others may access it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} is accessible to others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    return path.read_text().strip()


def read_log_key(path: Path) -> Signer:
    """The key in `path`; `PermissionError` if the group or others may read it."""
    return Signer.from_skey(read_private(path))
