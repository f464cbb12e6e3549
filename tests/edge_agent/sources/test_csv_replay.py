"""CSV replay: the writer and the source round-trip, and bad files fail with the line named."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edge_agent.sources import SourceError
from edge_agent.sources.csv_replay import CsvReplaySource, format_ts, parse_ts, write_readings_csv
from edge_agent.sources.simulated import SimulatedSource
from protocol.envelope import Reading
from protocol.metrics import Quality
from simulators.faults import FaultWindow, MeterFault
from simulators.plant import PlantConfig, PlantKind

START = 1_750_464_000_000  # 2025-06-21T00:00:00Z
HEADER = "ts,metric,value,quality\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "readings.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", list(PlantKind))
def test_simulated_readings_round_trip_through_csv(tmp_path: Path, kind: PlantKind) -> None:
    source = SimulatedSource(PlantConfig(kind, seed=5), origin_ms=START)
    intervals = [source.read(START + k * 600_000) for k in range(36)]
    path = tmp_path / "plant.csv"
    with path.open("w", newline="") as f:
        rows = write_readings_csv(f, intervals)
    assert rows == sum(map(len, intervals))
    replay = CsvReplaySource(path)
    try:
        assert [replay.read(now_ms=0) for _ in intervals] == intervals
        with pytest.raises(SourceError, match="finished after 36 intervals"):
            replay.read(now_ms=0)
    finally:
        replay.close()


def test_restamp_uses_the_agents_time(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2025-06-21T12:00:00Z,energy_export_wh,10,\n"
                 "2025-06-21T12:00:00Z,active_power_w,5.5,\n2025-06-21T12:05:00Z,energy_export_wh,11,\n")
    replay = CsvReplaySource(path, restamp=True)
    assert replay.read(42) == [Reading(2, 42, 10), Reading(3, 42, 5.5)]
    assert replay.read(43) == [Reading(2, 43, 11)]
    replay.close()


def test_codes_flag_names_offsets_and_unix_milliseconds(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2025-06-21T20:00:00+08:00,2,10,SIMULATED|estimated\n"
                 "1750507200000,3, -7.25 ,1\n\n")
    replay = CsvReplaySource(path)
    assert replay.read(0) == [Reading(2, 1_750_507_200_000, 10, Quality.SIMULATED | Quality.ESTIMATED),
                              Reading(3, 1_750_507_200_000, -7.25, Quality.SOURCE_ERROR)]
    replay.close()


@pytest.mark.parametrize(("row", "message"), [
    ("2025-06-21T12:00:00Z,energy_export_wh,10.5,", "must be an integer"),
    ("2025-06-21T12:00:00Z,watts,10,", "unknown metric 'watts'"),
    ("2025-06-21T12:00:00Z,99,10,", "unknown metric '99'"),
    ("2025-06-21T12:00:00,energy_export_wh,10,", "no time zone"),
    ("2025-06-21T12:00:00Z,irradiance_w_m2,5000,", "outside"),
    ("2025-06-21T12:00:00Z,irradiance_w_m2,nan,", "outside"),
    ("2025-06-21T12:00:00Z,energy_export_wh,10,BOGUS", "BOGUS"),
    ("2025-06-21T12:00:00Z,energy_export_wh,10,64", "unknown quality bits"),
    ("2025-06-21T12:00:00Z,energy_export_wh,10", "expected 4 columns"),
])
def test_a_bad_row_names_its_line(tmp_path: Path, row: str, message: str) -> None:
    first = "2025-06-21T11:00:00Z,energy_export_wh,9,\n"
    replay = CsvReplaySource(write(tmp_path, HEADER + first + row + "\n"))
    with pytest.raises(SourceError, match=rf"readings\.csv:3: .*{message}"):
        replay.read(0)
    replay.close()


def test_timestamps_going_backwards_are_refused(tmp_path: Path) -> None:
    replay = CsvReplaySource(write(tmp_path, HEADER + "2000,2,10,\n1000,2,11,\n"))
    with pytest.raises(SourceError, match=r"readings\.csv:3: timestamps go backwards"):
        replay.read(0)
    replay.close()


def test_the_header_is_required(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="header ts,metric,value,quality"):
        CsvReplaySource(write(tmp_path, "1000,2,10,\n"))


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        CsvReplaySource(tmp_path / "nope.csv")


def test_timestamp_format_is_exact_to_the_millisecond() -> None:
    for ts in (0, 1_750_464_000_001, 1_750_464_123_999):
        assert parse_ts(format_ts(ts)) == ts
    assert format_ts(1_750_464_000_001) == "2025-06-21T00:00:00.001Z"


def test_an_outage_in_the_simulation_leaves_a_gap_not_an_empty_interval() -> None:
    source = SimulatedSource(PlantConfig(PlantKind.WIND, seed=1), [
        FaultWindow(MeterFault.METER_OUTAGE, START + 600_000, START + 1_200_000)], origin_ms=START)
    intervals = []
    for k in range(3):
        try:
            intervals.append(source.read(START + k * 600_000))
        except SourceError:
            continue
    buffer = io.StringIO()
    write_readings_csv(buffer, intervals)
    timestamps = {line.split(",")[0] for line in buffer.getvalue().splitlines()[1:]}
    assert timestamps == {format_ts(START), format_ts(START + 1_200_000)}
