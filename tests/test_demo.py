"""The README's first command: `mrv up` runs the whole pipeline, loses nothing, and ends serving the
operator console, where the admin it created logs in; Ctrl-C stops everything."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import pytest


@pytest.mark.slow
@pytest.mark.integration
def test_mrv_up_runs_the_whole_pipeline_then_serves_the_console() -> None:
    # Not tmp_path: mosquitto drops root for its service user, which cannot enter pytest's 0700 tree.
    with tempfile.TemporaryDirectory(prefix="mrv-demo-") as workdir:
        Path(workdir).chmod(0o755)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mrv_cli", "up", "--plants", "2", "--devices", "1", "--seconds", "20",
             "--dir", str(Path(workdir) / "demo")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watchdog = threading.Timer(600, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:  # until the demo says it serves (or exits)
                lines.append(line)
                if "Ctrl-C stops them all" in line:
                    break
            out = "".join(lines)
            console = re.search(r"console: (http://127\.0\.0\.1:\d+) +\(log in as admin; the password is in (\S+):",
                                out)
            assert console, out[-3000:]
            check_console(console[1], Path(console[2]))
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=120)
        finally:
            watchdog.cancel()
            if proc.poll() is None:  # a failed check: stop the demo's services too, not just the demo
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    out += rest
    assert proc.returncode == 0, out[-3000:]
    assert "lost 0" in out
    assert "1 bad_signature" in out and "1 not_cose_sign1" in out
    assert out.count("mrv verify -> verified:") == 2
    assert "confirmed" in out


def check_console(url: str, password_file: Path) -> None:
    """The console is up on the demo's data, and the admin logs in with the password from the 0600 file."""
    assert password_file.stat().st_mode & 0o777 == 0o600
    password = password_file.read_text().strip()
    with httpx.Client(base_url=url, timeout=60, headers={"Origin": url}, follow_redirects=True) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        login = client.post("/login", data={"username": "admin", "password": password})
        assert login.status_code == 200 and login.url.path == "/", login.text[:500]
        assert 'data-device="' in login.text and "/projects/demo-solar" in login.text
        assert client.get("/admin/devices").status_code == 200
