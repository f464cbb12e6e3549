"""The README's first command: `mrv up` runs the whole pipeline and loses nothing."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.integration
def test_mrv_up_runs_the_whole_pipeline() -> None:
    # Not tmp_path: mosquitto drops root for its service user, which cannot enter pytest's 0700 tree.
    with tempfile.TemporaryDirectory(prefix="mrv-demo-") as workdir:
        Path(workdir).chmod(0o755)
        result = subprocess.run(
            [sys.executable, "-m", "mrv_cli", "up", "--plants", "2", "--devices", "1", "--seconds", "20",
             "--dir", str(Path(workdir) / "demo")],
            capture_output=True, text=True, timeout=600, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "lost 0" in out
    assert "1 bad_signature" in out and "1 not_cose_sign1" in out
    assert out.count("mrv verify -> verified:") == 2
    assert "confirmed" in out
