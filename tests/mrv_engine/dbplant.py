"""A simulated PV project in the database: configuration, recordings and the pure engine's view of them."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Sequence

import numpy as np
import psycopg

from mrv_engine import (
    MeterReadings,
    PeriodData,
    ProjectConfig,
    RegisterSeries,
    SampleSeries,
    Span,
    load_project_config,
)
from mrv_engine.columns import EnvelopeColumns
from mrv_engine.seed import DeviceRecording, record, write
from mrv_engine.timespan import day_start_ms
from protocol.metrics import Metric
from simulators.faults import FaultInjector, FaultWindow
from simulators.plant import Plant, PlantConfig, PlantKind
from tests.mrv_engine.builders import DAY, HOUR, OFFSET

PROJECT = "pv-db"
DAY1 = day_start_ms(dt.date(2026, 6, 1), OFFSET)  # recordings start here (local midnight)
PERIOD = Span(DAY1 + DAY, DAY1 + 2 * DAY)  # the local day 2026-06-02


def project_toml(devices: Sequence[str] = ("pv-1",)) -> str:
    """The project configuration file: a PV plant of 1 MW devices, read every minute."""
    meters = "".join(f"""
[[meters]]
id = "M-{d}"
role = "main"
device_id = "{d}"
accuracy_class = "0.2S"
capacity_kw = 1000
irradiance_device = "{d}"
""" for d in devices)
    return f"""project_id = "{PROJECT}"
technology = "solar_pv"
nameplate_capacity_mw = {{ value = {len(devices)}, source = "grid connection agreement" }}
utc_offset_minutes = {OFFSET}
crediting_period = {{ start = 2024-01-01, end = 2030-12-31 }}
methodology = {{ id = "ACM0002" }}
claims = {{ declared = ["CDM"] }}
monitoring = {{ interval_s = 60 }}
site = {{ latitude = 37.5, longitude = 105.0 }}

[grid_ef]
kind = "combined_margin"
ef_om = {{ value = 0.8, source = "PDD B.6.3" }}
ef_bm = {{ value = 0.4, source = "PDD B.6.3" }}
{meters}"""


def project_config(devices: Sequence[str] = ("pv-1",)) -> ProjectConfig:
    return load_project_config(tomllib.loads(project_toml(devices)))


def recording(device_id: str = "pv-1", seed: int = 1, faults: Sequence[FaultWindow] = (), *,
              offline: Sequence[tuple[int, int]] = (), hours: float = 60) -> DeviceRecording:
    plant = FaultInjector(Plant(PlantConfig(kind=PlantKind.PV, seed=seed, weather_seed=1), DAY1), faults)
    return record(plant, device_id, DAY1, DAY1 + int(hours * HOUR), offline=offline)


def store(conninfo: str, recordings: Sequence[DeviceRecording]) -> int:
    with psycopg.connect(conninfo) as conn:
        return write(conn, PROJECT, recordings)


def pure_data(config: ProjectConfig, recordings: Sequence[DeviceRecording], period: Span = PERIOD
              ) -> PeriodData:
    """The engine's input built straight from the recordings, every reading, no database (and so no
    envelope hashes)."""
    meters, samples, arrivals = {}, {}, {}
    for rec in recordings:
        t = rec.device_time_ms
        meter = next(m for m in config.meters if m.device_id == rec.device_id)
        meters[meter.id] = MeterReadings(RegisterSeries.of(t, rec.values[Metric.ENERGY_EXPORT_WH]),
                                         RegisterSeries.of(t, rec.values[Metric.ENERGY_IMPORT_WH]))
        for metric in (Metric.ACTIVE_POWER_W, Metric.IRRADIANCE_W_M2):
            values = rec.values[metric]
            samples[(rec.device_id, metric)] = SampleSeries(t[~np.isnan(values)], values[~np.isnan(values)])
        envelopes = EnvelopeColumns(np.arange(t.size), t, rec.received_ms, np.zeros(t.size, "V32"))
        arrivals[rec.device_id] = envelopes.arrivals(period.start_ms, period.end_ms)
    return PeriodData(period, meters, samples, arrivals)
