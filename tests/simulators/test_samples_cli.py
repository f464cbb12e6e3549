"""Sample envelopes and the `mrv sim` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mrv_cli
from edge_agent.sources.csv_replay import CsvReplaySource
from edge_agent.sources.simulated import SimulatedSource
from protocol.envelope import GENESIS_PREV, envelope_hash, verify_envelope
from protocol.inspect import main as inspect_main
from protocol.keys import PublicKeyRecord
from simulators.cli import main, parse_fault
from simulators.faults import MeterFault
from simulators.plant import PlantConfig, PlantKind
from simulators.samples import export_envelopes
from tests.simulators.common import HOUR, START


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_exported_envelopes_verify_with_the_exported_keys(tmp_path: Path) -> None:
    exported = export_envelopes(tmp_path, devices=3, envelopes=4, seed=7)
    assert sorted(files(tmp_path)) == sorted(
        [f"{d}-{seq}.cose" for d in ("sim-pv-000", "sim-wind-001", "sim-pv-002") for seq in range(4)]
        + [f"{d}.pub.json" for d in ("sim-pv-000", "sim-wind-001", "sim-pv-002")])
    for device in exported:
        record = PublicKeyRecord.from_json(device.public_key_file.read_text())
        assert record.device_id == device.device_id
        envelopes = [verify_envelope(path.read_bytes(), record.public_key) for path in device.envelope_files]
        assert [e.seq for e in envelopes] == [0, 1, 2, 3]
        chained = [GENESIS_PREV, *(envelope_hash(e.raw) for e in envelopes[:-1])]
        assert [e.payload.prev for e in envelopes] == chained
        assert all(e.device_id == device.device_id for e in envelopes)


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    export_envelopes(tmp_path / "a", devices=2, envelopes=3, seed=7)
    export_envelopes(tmp_path / "b", devices=2, envelopes=3, seed=7)
    export_envelopes(tmp_path / "c", devices=2, envelopes=3, seed=8)
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert files(tmp_path / "a")["sim-pv-000.pub.json"] != files(tmp_path / "c")["sim-pv-000.pub.json"]


def test_cli_export_envelopes_and_inspect_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples"
    assert mrv_cli.main(["sim", "export-envelopes", "--out", str(out), "--devices", "2", "--envelopes", "3",
                         "--seed", "7"]) == 0
    assert "mrv inspect" in capsys.readouterr().out
    export_envelopes(tmp_path / "direct", devices=2, envelopes=3, seed=7)
    assert files(out) == files(tmp_path / "direct")
    key = out / "sim-wind-001.pub.json"
    assert inspect_main([str(out / "sim-wind-001-2.cose"), "--pubkey", str(key)]) == 0
    assert json.loads(capsys.readouterr().out)["seq"] == 2


def test_cli_plant_csv_replays_as_the_same_readings(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plant", "--kind", "wind", "--seed", "4", "--hours", "6", "--interval-s", "1800",
                 "--format", "csv"]) == 0
    path = tmp_path / "wind.csv"
    path.write_text(capsys.readouterr().out)
    simulated = SimulatedSource(PlantConfig(PlantKind.WIND, 4), origin_ms=START)
    replay = CsvReplaySource(path)
    try:
        for k in range(13):
            assert replay.read(0) == simulated.read(START + k * 1_800_000)
    finally:
        replay.close()


def test_cli_plant_table_shows_faults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plant", "--kind", "pv", "--hours", "3", "--interval-s", "3600",
                 "--fault", "meter_outage:1:1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "energy_export_wh" in lines[0] and "irradiance_w_m2" in lines[0]
    assert len(lines) == 5 and "meter outage" in lines[2]


def test_cli_fleet_prints_progress_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "--plants", "2", "--devices", "2", "--hours", "2", "--interval-s", "600",
                 "--fault", "p000-pv-00=meter_outage:0:1",
                 "--fault", "p001-wind-01=duplicated_pattern:0:1:p001-wind-00",
                 "--keys-out", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    assert "+   1.0 h" in out and "+   2.0 h" in out
    assert "46 reads" in out and "6 failed reads" in out  # 4 devices x 13 reads, 6 of them in the outage
    assert sorted(p.name for p in (tmp_path / "keys").iterdir())[0] == "p000-pv-00.pub.json"


@pytest.mark.parametrize(("argv", "message"), [
    (["fleet", "--fault", "p000-pv-00=duplicated_pattern:0:1:p001-wind-00"], "same site"),
    (["fleet", "--fault", "nobody=spike:0:1"], "no device 'nobody'"),
    (["plant", "--fault", "gremlins:0:1"], "unknown kind"),
    (["plant", "--fault", "spike:1"], "KIND:START_H:HOURS"),
    (["plant", "--fault", "spike:noon:1"], "'spike:noon:1': could not convert"),
    (["plant", "--fault", "frozen_register:1:1:5"], "takes no magnitude"),
    (["plant", "--kind", "wind", "--fault", "night_generation:0:1"], "PV fault"),
    (["fleet", "--mqtt", "localhost"], "--data-dir"),
])
def test_cli_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["plant", "modbus", "fleet", "export-envelopes"])
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        mrv_cli.main(["sim", command, "--help"])
    assert exit_.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_parse_fault() -> None:
    window = parse_fault("night_generation:13:9:0.5", START)
    assert (window.fault, window.start_ms, window.end_ms, window.magnitude) == (
        MeterFault.NIGHT_GENERATION, START + 13 * HOUR, START + 22 * HOUR, 0.5)
    assert parse_fault("duplicated_pattern:1:2:42", START).donor_seed == 42
