"""A project-managed anvil (local EVM chain) for the demo and the tests, installed from npm.

Node tools (anvil from `@foundry-rs/anvil`, solcjs from `solc`) go into a project-local npm prefix,
`var/node` under the repository (or $MRV_NODE_PREFIX), installed on first use; nothing global.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from managed_services._process import free_port, wait_for_port

NODE_PREFIX = Path(os.environ.get("MRV_NODE_PREFIX", Path(__file__).resolve().parent.parent / "var" / "node"))
ANVIL_PACKAGE = "@foundry-rs/anvil@1.7.1"
# anvil's first, pre-funded dev account (public knowledge: the default mnemonic "test test ... junk").
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def node_tool(package: str, binary: str, prefix: Path = NODE_PREFIX) -> Path:
    """The path of `binary` from npm `package` under `prefix`, installing the package if needed."""
    path = prefix / "node_modules" / ".bin" / binary
    if path.exists():
        return path
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"{binary} needs Node.js and npm: install them (e.g. `apt-get install -y npm`)")
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", package],
                   check=True, stdout=subprocess.DEVNULL)
    if not path.exists():
        raise RuntimeError(f"npm installed {package} but {path} is missing")
    return path


class Anvil:
    """anvil on 127.0.0.1:`port`, producing a block per transaction (automine)."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Anvil:
        binary = node_tool(ANVIL_PACKAGE, "anvil")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(self.port)],
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout, self._proc, self.log_path)
        return self

    def kill(self) -> None:
        """Stop anvil and its node wrapper (they share a process group of their own)."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
