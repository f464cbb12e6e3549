"""A project-managed Mosquitto broker: config from the shipped template, data dir of our own.

The shipped settings matter (measured on the 2-core build machine): without `set_tcp_nodelay true`
a QoS 1 subscriber crawls at ~800 msg/s, and a small `max_queued_messages` silently drops QoS 1
messages queued for a slow subscriber.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from managed_services._process import apt_install, chown_to, find_program, free_port, wait_for_port

SERVICE_USER = "mosquitto"


def ensure_mosquitto() -> str:
    """Path of the mosquitto binary, installing the Debian package when missing."""
    path = find_program("mosquitto")
    if path is None:
        apt_install("mosquitto", "mosquitto-clients")
        path = find_program("mosquitto")
    if path is None:
        raise RuntimeError("mosquitto is not installed and could not be installed")
    return path


@dataclass(frozen=True)
class BrokerAuth:
    """Per-device credentials: a mosquitto password file and the ACL file (see ingest's registry)."""

    password_file: Path
    acl_file: Path


def render_config(port: int, data_dir: Path, auth: BrokerAuth | None = None, bind: str = "127.0.0.1") -> str:
    template = resources.files("managed_services").joinpath("mosquitto.conf").read_text()
    text = template.format(port=port, bind=bind, data_dir=data_dir)
    if auth is None:
        return text + "allow_anonymous true\n"
    return text + (f"allow_anonymous false\npassword_file {auth.password_file}\n"
                   f"acl_file {auth.acl_file}\n")


class Mosquitto:
    """Start, stop, restart and kill a broker on `port` with its state in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, auth: BrokerAuth | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = ensure_mosquitto()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        config.write_text(render_config(self.port, self.data_dir, self.auth))
        if os.geteuid() == 0:
            # mosquitto drops root for its service user, which must own the persistence files.
            chown_to(self.data_dir, SERVICE_USER)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        wait_for_port(self.port, timeout, self.proc, self.log_path)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: mosquitto saves its persistence file (sessions, queued QoS 1) on SIGTERM."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m managed_services.mosquitto",
        description="Run the project's Mosquitto in the foreground until Ctrl-C.",
        epilog="example: python -m managed_services.mosquitto --port 1883 --data-dir var/mosquitto")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--data-dir", type=Path, default=Path("var/mosquitto"))
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--acl-file", type=Path)
    args = parser.parse_args(argv)
    auth = BrokerAuth(args.password_file, args.acl_file) if args.password_file and args.acl_file else None
    broker = Mosquitto(args.data_dir.resolve(), args.port, auth).start()
    print(f"mosquitto listening on {broker.url}, data in {broker.data_dir}, log {broker.log_path}")
    try:
        assert broker.proc is not None
        broker.proc.wait()
    except KeyboardInterrupt:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
