"""One monitoring period from configuration and data to a `PeriodResult`: the pure pipeline.

Register steps are derived once per meter; the plausibility checks the configuration asks for run on
them and on the samples; the flags that exclude or bound energy feed the net generation of the main and
check meters; the double-claiming guard trims what other schemes have claimed; the methodology turns
the rest into emission reductions.
"""

from __future__ import annotations

import dataclasses
import functools

from mrv_engine.config import MeterConfig, ProjectConfig
from mrv_engine.double_claim import guard
from mrv_engine.emission_factor import resolve_grid_ef
from mrv_engine.errors import PeriodOutsideCrediting
from mrv_engine.grid_factors import GridFactorTable, china_grid_factors
from mrv_engine.methodologies import PeriodInputs, methodology_for
from mrv_engine.net_generation import MeterEnergy, MeterRole, combine, meter_energy
from mrv_engine.period_data import PeriodData
from mrv_engine.plausibility import (
    above_nameplate,
    clock_skew,
    duplicated_patterns,
    flat_line,
    frozen_register,
    impossible_ramp,
    pv_export_at_night,
    pv_performance,
    register_discontinuities,
    wind_above_power_curve,
)
from mrv_engine.registers import RegisterSteps, register_steps
from mrv_engine.results import EnvelopeDigest, Flag, PeriodResult, Register
from mrv_engine.technology import Technology
from mrv_engine.units import exact
from protocol.metrics import Metric

Steps = dict[str, tuple[RegisterSteps, RegisterSteps | None]]


def _meter_flags(config: ProjectConfig, data: PeriodData, meter: MeterConfig,
                 export: RegisterSteps, import_: RegisterSteps | None) -> list[Flag]:
    rules = config.plausibility
    device = meter.device_id
    capacity_w = config.capacity_w(meter)
    flags = above_nameplate(device, export, capacity_w, rules.nameplate_tolerance)
    flags += register_discontinuities(device, export, "export")
    if import_ is not None:
        flags += register_discontinuities(device, import_, "import")
    if rules.flat_line_intervals is not None:
        flags += flat_line(device, export, rules.flat_line_intervals)
    power = data.samples.get((device, Metric.ACTIVE_POWER_W))
    if power is not None:
        if rules.frozen_intervals is not None:
            registers: tuple[tuple[Register, RegisterSteps | None], ...] = (("export", export),
                                                                              ("import", import_))
            for register, steps in registers:
                if steps is not None:
                    flags += frozen_register(device, steps, power, min_intervals=rules.frozen_intervals,
                                             min_power_w=rules.frozen_min_power * capacity_w,
                                             register=register)
        if rules.max_ramp_per_minute is not None:
            flags += impossible_ramp(device, power, rules.max_ramp_per_minute * capacity_w)
    slack_w = rules.slack * capacity_w
    if config.technology is Technology.SOLAR_PV:
        if config.site is not None:
            flags += pv_export_at_night(device, export, config.site.latitude, config.site.longitude,
                                        max_elevation_deg=rules.night_sun_elevation_deg,
                                        tolerance_w=rules.night_tolerance * capacity_w)
        irradiance = data.samples.get((meter.irradiance_device or "", Metric.IRRADIANCE_W_M2))
        if irradiance is not None:
            flags += pv_performance(device, export, irradiance, capacity_w, pr_max=rules.pr_max,
                                    pr_min=rules.pr_min, min_irradiance_w_m2=rules.pr_min_irradiance_w_m2,
                                    slack_w=slack_w)
    wind = data.samples.get((meter.wind_speed_device or "", Metric.WIND_SPEED_M_S))
    if meter.power_curve is not None and wind is not None:
        flags += wind_above_power_curve(device, export, wind, meter.power_curve.wind_speed_m_s,
                                        [kw * 1e3 for kw in meter.power_curve.power_kw],
                                        tolerance=rules.power_curve_tolerance, slack_w=slack_w)
    return flags


def screen(config: ProjectConfig, data: PeriodData, steps: Steps) -> tuple[Flag, ...]:
    """Every plausibility flag for the period, for every meter and device with data."""
    rules = config.plausibility
    flags: list[Flag] = []
    for meter_id, (export, import_) in steps.items():
        flags += _meter_flags(config, data, config.meter(meter_id), export, import_)
    if rules.duplicate_window is not None:
        flags += duplicated_patterns(
            [(config.meter(m).device_id, export,
              rules.duplicate_min_energy * config.capacity_w(config.meter(m)))
             for m, (export, _) in steps.items()], rules.duplicate_window)
    for device, arrivals in data.arrivals.items():
        behind = rules.clock_max_behind_s
        flags += clock_skew(device, arrivals, max_ahead_ms=round(rules.clock_max_ahead_s * 1000),
                            max_behind_ms=None if behind is None else round(behind * 1000))
    # Readings bracketing the period may lie outside it; findings there belong to other periods.
    return tuple(f for f in flags if f.span.overlaps(data.period))


def _steps(config: ProjectConfig, data: PeriodData) -> Steps:
    unknown = set(data.meters) - {m.id for m in config.meters}
    missing = {m.id for m in config.meters if m.role is not MeterRole.AUX} - set(data.meters)
    if unknown or missing:
        raise ValueError(f"period data must hold every main and check meter and no unknown one "
                         f"(missing: {sorted(missing)}, unknown: {sorted(unknown)})")
    steps: Steps = {}
    for meter_id, readings in data.meters.items():
        meter = config.meter(meter_id)
        derive = functools.partial(register_steps, max_power_w=config.meter_spec(meter).max_power_w,
                                   modulus_wh=meter.register_modulus_wh)
        steps[meter_id] = (derive(readings.export_wh),
                           None if readings.import_wh is None else derive(readings.import_wh))
    return steps


def assess_period(config: ProjectConfig, data: PeriodData, *, grid_factors: GridFactorTable | None = None
                  ) -> PeriodResult:
    """Net generation, emissions and reductions of one monitoring period, with every flag, deduction and
    parameter. `grid_factors` defaults to the packaged Chinese table."""
    period = data.period
    if period.duration_ms <= 0:
        raise ValueError("a monitoring period must have a positive duration")
    if not config.crediting_span.contains(period):
        raise PeriodOutsideCrediting(f"the period {period.start_ms}..{period.end_ms} ms is not inside the "
                                     f"crediting period {config.crediting_period.start} to "
                                     f"{config.crediting_period.end}")
    steps = _steps(config, data)
    flags = screen(config, data, steps)
    energies: list[MeterEnergy] = []
    interval_ms = config.monitoring.interval_s * 1000
    for meter_id, (export, import_) in steps.items():
        meter = config.meter(meter_id)
        if meter.role is MeterRole.AUX:
            continue
        caps = [f for f in flags if f.device_id == meter.device_id and f.export_cap_w is not None]
        energies.append(meter_energy(config.meter_spec(meter), export, import_, period,
                                     interval_ms=interval_ms,
                                     gap_ms=config.monitoring.gap_intervals * interval_ms, caps=caps))
    generation = combine(energies, period, settlement=data.settlement,
                         settlement_tolerance=exact(config.monitoring.settlement_tolerance))
    plugin = methodology_for(config.methodology)
    claims = guard(generation.net_wh, period, data.claims, credited=plugin.scheme,
                   declared=config.claims.declared, policy=config.claims.policy)
    generation = dataclasses.replace(
        generation,
        net_wh=claims.eligible_wh,
        adjustments=generation.adjustments + ((claims.adjustment,) if claims.adjustment else ()),
        flags=flags + generation.flags + ((claims.flag,) if claims.flag else ()),
    )
    inputs = PeriodInputs(
        project_id=config.project_id,
        period=period,
        generation=generation,
        grid_ef=resolve_grid_ef(config.grid_ef, grid_factors or china_grid_factors()),
        envelopes=EnvelopeDigest.of(data.envelope_hashes),
        fuel_consumption=data.fuel_consumption,
    )
    return plugin.compute(inputs)

