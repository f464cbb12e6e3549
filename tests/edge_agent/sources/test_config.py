"""Source configuration: the discriminated union, and build_source opening the right source lazily."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.sources import (
    SOURCE_CONFIG,
    CsvSourceConfig,
    SimulatedSourceConfig,
    SunSpecSourceConfig,
    build_source,
)
from edge_agent.sources.config import FAULTS_WITH_MAGNITUDE, FaultName
from edge_agent.sources.csv_replay import CsvReplaySource
from edge_agent.sources.simulated import SimulatedSource
from edge_agent.sources.sunspec import SunSpecSource
from protocol.metrics import Metric, Quality
from simulators.faults import MeterFault

HOUR_ONE = {"start": "2025-06-21T01:00:00Z", "end": "2025-06-21T02:00:00Z"}


def test_each_variant_validates_from_a_table() -> None:
    assert SOURCE_CONFIG.validate_python({"type": "sunspec", "host": "10.0.0.5", "port": "5020"}) == \
        SunSpecSourceConfig(host="10.0.0.5", port=5020)  # strings from environment overrides coerce
    assert isinstance(SOURCE_CONFIG.validate_python({"type": "csv", "path": "a.csv"}), CsvSourceConfig)
    simulated = SOURCE_CONFIG.validate_python({
        "type": "simulated", "kind": "wind", "seed": 3, "start": "2025-06-21T00:00:00Z",
        "faults": [{"fault": "spike", "start": "2025-06-21T01:00:00Z", "end": "2025-06-21T01:01:00Z"}]})
    assert isinstance(simulated, SimulatedSourceConfig)
    assert simulated.faults[0].fault == "spike"


@pytest.mark.parametrize("table", [
    {"type": "opcua", "host": "x"},
    {"type": "sunspec"},
    {"type": "sunspec", "host": "x", "port": 70000},
    {"type": "sunspec", "host": "x", "colour": "red"},
    {"type": "simulated", "kind": "hydro"},
    {"type": "simulated", "kind": "pv", "start": "2025-06-21T00:00:00"},  # no time zone
    {"type": "simulated", "kind": "pv", "faults": [{"fault": "gremlins", **HOUR_ONE}]},
    {"type": "simulated", "kind": "pv", "faults": [{"fault": "spike", "start": HOUR_ONE["end"],
                                                    "end": HOUR_ONE["start"]}]},
    {"type": "simulated", "kind": "pv", "faults": [{"fault": "duplicated_pattern", **HOUR_ONE}]},
    {"type": "simulated", "kind": "pv", "faults": [{"fault": "spike", "donor_seed": 3, **HOUR_ONE}]},
    {"type": "simulated", "kind": "pv", "faults": [{"fault": "meter_outage", "magnitude": 2, **HOUR_ONE}]},
    {"type": "simulated", "kind": "wind", "faults": [{"fault": "night_generation", **HOUR_ONE}]},
])
def test_invalid_tables_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SOURCE_CONFIG.validate_python(table)


def test_a_relative_csv_path_is_relative_to_the_configuration_file() -> None:
    config = SOURCE_CONFIG.validate_python({"type": "csv", "path": "rec/a.csv"},
                                           context={"base_dir": "/etc/mrv"})
    assert isinstance(config, CsvSourceConfig)
    assert config.path == Path("/etc/mrv/rec/a.csv")
    absolute = SOURCE_CONFIG.validate_python({"type": "csv", "path": "/data/a.csv"},
                                             context={"base_dir": "/x"})
    assert isinstance(absolute, CsvSourceConfig)
    assert absolute.path == Path("/data/a.csv")


def test_fault_names_in_the_configuration_are_the_simulators_faults() -> None:
    assert set(typing.get_args(FaultName)) == {f.value for f in MeterFault}
    assert {f.value for f in MeterFault if f.default_magnitude is not None} == FAULTS_WITH_MAGNITUDE


def test_build_source_opens_each_kind(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("ts,metric,value,quality\n1000,2,5,\n")
    sources = [build_source(SunSpecSourceConfig(host="127.0.0.1", port=1)),
               build_source(CsvSourceConfig(path=csv)),
               build_source(SimulatedSourceConfig(kind="pv"))]
    try:
        assert [type(s) for s in sources] == [SunSpecSource, CsvReplaySource, SimulatedSource]
    finally:
        for source in sources:
            source.close()


def test_a_simulated_source_from_configuration_applies_its_faults() -> None:
    source = build_source(SOURCE_CONFIG.validate_python({
        "type": "simulated", "kind": "pv", "seed": 2, "capacity_w": 5000, "start": "2025-06-21T00:00:00Z",
        "faults": [{"fault": "clock_drift", "start": "2025-06-21T01:00:00Z", "end": "2025-06-21T03:00:00Z",
                    "magnitude": 3600}]}))
    now = 1_750_464_000_000 + 2 * 3_600_000
    readings = source.read(now)
    assert {r.ts_ms - now for r in readings} == {3_600_000}, "one hour of drift per hour, one hour in"
    assert all(r.quality == Quality.SIMULATED for r in readings)
    assert {Metric(r.metric) for r in readings} >= {Metric.ENERGY_EXPORT_WH, Metric.IRRADIANCE_W_M2}


def _modules_loaded_by(config: str) -> set[str]:
    code = ("import sys\nfrom edge_agent.sources import SOURCE_CONFIG, build_source\n"
            f"build_source(SOURCE_CONFIG.validate_python({config})).close()\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_sources_import_only_what_they_need() -> None:
    sunspec = _modules_loaded_by("{'type': 'sunspec', 'host': '127.0.0.1'}")
    assert "pymodbus" in sunspec
    assert "simulators" not in sunspec
    simulated = _modules_loaded_by("{'type': 'simulated', 'kind': 'wind'}")
    assert "simulators" in simulated
    assert "pymodbus" not in simulated
    assert "numpy" not in sunspec | simulated
