from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

import mrv_cli
from edge_agent.cli import main
from edge_agent.keystore import FileKeyStore
from edge_agent.outbox import Draft, Outbox
from protocol import Metric, PublicKeyRecord, Reading

T0 = 1_750_000_000_000

CONFIG = """
data_dir = "data"
[outbox]
max_bytes = 1_048_576
[[devices]]
device_id = "inv-1"
project_id = "park"
key_file = "inv-1.key"
[devices.source]
type = "simulated"
kind = "pv"
[[devices]]
device_id = "inv-2"
project_id = "park"
key_file = "inv-2.key"
[devices.source]
type = "simulated"
kind = "wind"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(CONFIG)
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_keygen_writes_the_key_and_the_enrollment_record(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    key, public = tmp_path / "keys" / "inv-1.key", tmp_path / "inv-1.pub.json"
    assert main(["keygen", "--device-id", "inv-1", "--key-file", str(key), "--public-out", str(public)]) == 0
    record = PublicKeyRecord.from_json(public.read_text())
    assert record.device_id == "inv-1" and record.kid.hex() in capsys.readouterr().out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["keygen", "--device-id", "inv-1", "--key-file", str(key), "--public-out", str(public)]) == 1
    assert "refusing to replace a device key" in one_line_error(capsys)
    assert main(["keygen", "--device-id", "in/valid", "--key-file", str(tmp_path / "x"),
                 "--public-out", str(public)]) == 1
    assert "invalid device id" in one_line_error(capsys)


def test_status_shows_queues_acks_and_alarms(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--config", str(config)]) == 1
    assert "no outbox" in one_line_error(capsys)
    store = FileKeyStore({"inv-1": config.parent / "inv-1.key"})
    store.generate("inv-1")
    signer = store.signer("inv-1")
    (config.parent / "data").mkdir()
    with Outbox(config.parent / "data" / "outbox.sqlite", max_bytes=2000) as outbox:
        for i in range(12):  # a small budget: some envelopes are evicted
            t = T0 + i * 10_000
            outbox.append([Draft("inv-1", t, (Reading(Metric.ENERGY_EXPORT_WH, t, i),), signer)], t)
        outbox.mark_published({"inv-1": [9, 10]}, T0 + 150_000)
        outbox.delete_receipted({"inv-1": [(10, 10)]}, T0 + 200_000)
    assert main(["status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "policy drop_oldest" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("inv-")}
    # queued, published (9), last seq, last receipt
    assert rows["inv-1"][:6] == ["inv-1", "park", rows["inv-1"][2], "1", "11", "10"]
    assert rows["inv-2"][2:] == ["0", "0", "-", "-", "-"]
    assert "1 published awaiting ingest's receipt" in text
    assert "inv-1 outbox_evicted: outbox full:" in text
    assert mrv_cli.main(["edge", "status", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["devices"][0]["last_seq"] == 11 and report["alarms"][0]["device_id"] == "inv-1"


def test_run_fails_in_one_line_without_a_key(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(config)]) == 1
    assert "no key file at" in one_line_error(capsys)
    bad = config.parent / "bad.toml"
    bad.write_text(CONFIG.replace("[outbox]", "[outbox]\npolicy = 'sometimes'"))
    assert main(["run", "--config", str(bad)]) == 1
    assert "outbox.policy" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["keygen", "run", "status"])
def test_every_command_has_help_with_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"example:\n  mrv edge {command}" in capsys.readouterr().out
