"""`mrv sim`: simulated plants, a SunSpec Modbus device, fleets, and sample envelopes."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from edge_agent.sources import SourceError
from edge_agent.sources.csv_replay import format_ts, write_readings_csv
from edge_agent.sources.simulated import SimulatedSource
from protocol.envelope import Reading
from protocol.metrics import METRICS, Metric
from simulators.faults import FaultWindow, MeterFault
from simulators.fleet import Fleet, FleetConfig, FleetStats, fleet_devices
from simulators.plant import PlantConfig, PlantKind
from simulators.samples import DEFAULT_START_MS, export_envelopes

_HOUR_MS = 3_600_000
_FAULT_HELP = ("KIND:START_H:HOURS[:VALUE], in hours from the start; VALUE is the magnitude, or the donor "
               f"seed of duplicated_pattern. KIND is one of: {', '.join(MeterFault)}")

EPILOG = """examples:
  mrv sim plant --kind pv --seed 1 --hours 24
  mrv sim plant --kind wind --hours 48 --format csv > wind.csv
  mrv sim plant --kind pv --hours 24 --fault frozen_register:10:2 --fault night_generation:14:8
  mrv sim modbus --kind pv --port 5020 --speed 60
  mrv sim fleet --plants 4 --devices 3 --hours 24 --speed 0
  mrv sim fleet --plants 2 --devices 2 --hours 6 --speed 600 --mqtt localhost:1883 --data-dir /tmp/fleet
  mrv sim export-envelopes --out samples --devices 3 --envelopes 10 --seed 7
"""


def main(argv: list[str], prog: str = "mrv sim") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except ValueError as e:
        print(f"{prog} {args.command}: {e}", file=sys.stderr)
        return 2
    return result


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Simulated plants, Modbus devices, fleets and sample envelopes.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    plant = command("plant", "print a simulated plant's readings",
                    "Print a simulated plant's meter readings as a table, or as the CSV that a csv source "
                    "replays.")
    _plant_options(plant, default_start=DEFAULT_START_MS)
    plant.add_argument("--hours", type=float, default=24.0, help="how long to simulate (default 24)")
    plant.add_argument("--interval-s", type=int, default=900, help="seconds between readings (default 900)")
    plant.add_argument("--format", choices=("table", "csv"), default="table")
    plant.set_defaults(run=_run_plant)

    modbus = command("modbus", "serve a simulated plant as a SunSpec Modbus TCP device",
                     "Serve a simulated plant as a SunSpec device (models 1, 103, 203, 302, 308 from "
                     "register 40000) until Ctrl-C.")
    _plant_options(modbus, default_start=None)
    modbus.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all)")
    modbus.add_argument("--port", type=int, default=5020, help="TCP port (default 5020; 502 needs root)")
    modbus.add_argument("--unit-id", type=int, default=1, help="the common model's device address (DA)")
    modbus.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    modbus.set_defaults(run=_run_modbus)

    fleet = command("fleet", "run N plants x M devices in accelerated time",
                    "Run a fleet of simulated devices; print progress each simulated hour and counts at the "
                    "end. With --mqtt the real edge agent reads, signs and publishes them.")
    fleet.add_argument("--plants", type=int, default=2, help="sites, alternately PV and wind (default 2)")
    fleet.add_argument("--devices", type=int, default=2, help="devices per site (default 2)")
    fleet.add_argument("--hours", type=float, default=24.0)
    fleet.add_argument("--speed", type=float, default=0.0,
                       help="simulated seconds per real second; 0: as fast as possible (default)")
    fleet.add_argument("--seed", type=int, default=0)
    fleet.add_argument("--interval-s", type=int, default=60, help="seconds between reads of a device")
    fleet.add_argument("--capacity-w", type=float, default=1_000_000.0, help="per device")
    fleet.add_argument("--start", type=_timestamp, default=DEFAULT_START_MS,
                       help="ISO 8601 start time, UTC without a zone")
    fleet.add_argument("--fault", action="append", default=[], metavar="DEVICE=SPEC",
                       help="a fault of one device, e.g. p000-pv-01=frozen_register:10:2; SPEC as for "
                       "`plant`, except that duplicated_pattern takes a donor DEVICE at the same site")
    fleet.add_argument("--mqtt", metavar="HOST[:PORT]", help="run the edge agent, publishing to this broker")
    fleet.add_argument("--data-dir", type=Path, help="the agent's outbox directory (with --mqtt)")
    fleet.add_argument("--project", default="sim", help="project id of the agent's topics (with --mqtt)")
    fleet.add_argument("--keys-out", type=Path, help="write each device's public key (PublicKeyRecord) here")
    fleet.set_defaults(run=_run_fleet)

    export = command("export-envelopes", "write signed sample envelopes and public keys",
                     "Write signed sample envelopes (DEVICE-SEQ.cose, raw COSE_Sign1) and each device's "
                     "public key (DEVICE.pub.json). The same seed writes the same bytes.")
    export.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    export.add_argument("--devices", type=int, default=3)
    export.add_argument("--envelopes", type=int, default=10, help="per device")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--interval-s", type=int, default=300)
    export.add_argument("--start", type=_timestamp, default=DEFAULT_START_MS,
                        help="ISO 8601 start time, UTC without a zone")
    export.set_defaults(run=_run_export)
    return parser


def _plant_options(parser: argparse.ArgumentParser, *, default_start: int | None) -> None:
    parser.add_argument("--kind", choices=[k.value for k in PlantKind], default="pv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--capacity-w", type=float, default=1_000_000.0, help="AC nameplate or rated power")
    parser.add_argument("--lat", type=float, default=PlantConfig.lat_deg)
    parser.add_argument("--lon", type=float, default=PlantConfig.lon_deg)
    parser.add_argument("--start", type=_timestamp, default=default_start,
                        help="ISO 8601 start time, UTC without a zone (default: "
                        + ("now" if default_start is None else format_ts(default_start)) + ")")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help=_FAULT_HELP)


def _timestamp(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def parse_fault(spec: str, start_ms: int) -> FaultWindow:
    """KIND:START_H:HOURS[:VALUE] (see --help) as a fault window."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"fault {spec!r}: expected KIND:START_H:HOURS[:VALUE]")
    try:
        fault = MeterFault(parts[0])
    except ValueError:
        raise ValueError(f"fault {spec!r}: unknown kind (one of {', '.join(MeterFault)})") from None
    value = parts[3] if len(parts) == 4 else None
    if fault is MeterFault.DUPLICATED_PATTERN and value is None:
        raise ValueError(f"fault {spec!r}: duplicated_pattern needs the donor as VALUE")
    try:
        begin = start_ms + round(float(parts[1]) * _HOUR_MS)
        end = begin + round(float(parts[2]) * _HOUR_MS)
        if fault is MeterFault.DUPLICATED_PATTERN:
            return FaultWindow(fault, begin, end, donor_seed=int(str(value)))
        return FaultWindow(fault, begin, end, magnitude=None if value is None else float(value))
    except ValueError as e:
        raise ValueError(f"fault {spec!r}: {e}") from None


def _plant_source(args: argparse.Namespace, start_ms: int) -> SimulatedSource:
    config = PlantConfig(PlantKind(args.kind), args.seed, capacity_w=args.capacity_w, lat_deg=args.lat,
                         lon_deg=args.lon)
    faults = [parse_fault(spec, start_ms) for spec in args.fault]
    return SimulatedSource(config, faults, origin_ms=start_ms)


def _intervals(source: SimulatedSource, start_ms: int, hours: float, interval_s: int,
               ) -> Iterator[tuple[int, list[Reading] | None]]:
    for now_ms in range(start_ms, start_ms + round(hours * _HOUR_MS) + 1, interval_s * 1000):
        try:
            yield now_ms, source.read(now_ms)
        except SourceError:
            yield now_ms, None


def _run_plant(args: argparse.Namespace) -> int:
    source = _plant_source(args, args.start)
    intervals = _intervals(source, args.start, args.hours, args.interval_s)
    if args.format == "csv":
        write_readings_csv(sys.stdout, (readings for _, readings in intervals if readings is not None))
        return 0
    metrics = [m for m in Metric if m in _TABLE_METRICS[source.config.kind]]
    names = [METRICS[m].name for m in metrics]
    print(f"{'time (UTC)':<24}  " + "  ".join(names))
    for now_ms, readings in intervals:
        if readings is None:
            print(f"{format_ts(now_ms):<24}  (meter outage: no reading)")
            continue
        by_metric = {r.metric: r.value for r in readings}
        cells = [f"{by_metric.get(m, ''):>{len(name)}}" for m, name in zip(metrics, names, strict=True)]
        print(f"{format_ts(readings[0].ts_ms):<24}  " + "  ".join(cells))
    return 0


_COMMON_METRICS = {Metric.ENERGY_EXPORT_WH, Metric.ENERGY_IMPORT_WH, Metric.ACTIVE_POWER_W,
                   Metric.AMBIENT_TEMPERATURE_C}
_TABLE_METRICS = {
    PlantKind.PV: _COMMON_METRICS | {Metric.IRRADIANCE_W_M2, Metric.MODULE_TEMPERATURE_C},
    PlantKind.WIND: _COMMON_METRICS | {Metric.WIND_SPEED_M_S},
}


def _run_modbus(args: argparse.Namespace) -> int:
    from simulators.modbus_server import SunSpecServer  # pymodbus only for this command

    if args.speed <= 0:
        raise ValueError("--speed must be positive")
    wall_start = time.time()
    start_ms = args.start if args.start is not None else round(wall_start * 1000)
    source = _plant_source(args, start_ms)
    server = SunSpecServer(source.plant(start_ms), host=args.host, port=args.port, unit_id=args.unit_id)
    try:
        server.start(start_ms)
    except RuntimeError as e:
        print(f"mrv sim modbus: {e}", file=sys.stderr)
        return 1
    host, port = server.address
    print(f"serving a simulated {args.kind} plant (seed {args.seed}) as SunSpec on {host}:{port}, "
          f"unit any, map at 40000; {args.speed:g}x real time; Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(1.0)
            now_ms = start_ms + round((time.time() - wall_start) * args.speed * 1000)
            snap = server.update(now_ms)
            if snap is None:
                print(f"{format_ts(now_ms)}  meter outage", flush=True)
            else:
                print(f"{format_ts(now_ms)}  net {snap.net_power_w / 1000:10.1f} kW  "
                      f"export {snap.export_wh:>12} Wh  import {snap.import_wh:>10} Wh", flush=True)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        server.stop()
    return 0


def _run_fleet(args: argparse.Namespace) -> int:
    base = FleetConfig(plants=args.plants, devices_per_plant=args.devices, seed=args.seed,
                       start_ms=args.start, interval_s=args.interval_s, capacity_w=args.capacity_w)
    fleet = Fleet(replace(base, faults=_fleet_faults(args.fault, base)))
    print(f"fleet: {len(fleet.devices)} devices ({args.plants} sites x {args.devices}), seed {args.seed}, "
          f"{args.hours:g} h from {format_ts(args.start)}, a read every {args.interval_s} s", flush=True)
    if args.keys_out:
        _write_keys(fleet, args.keys_out)
    if args.mqtt:
        return _run_fleet_agent(fleet, args)
    stats = fleet.run(args.hours, speed=args.speed, progress=_print_progress)
    print(f"done: {stats.reads} reads, {stats.readings} readings delivered, {stats.source_errors} failed "
          f"reads, {stats.held_back} held back by an offline gateway ({stats.still_held} still held), "
          f"{stats.wall_s:.1f} s wall", flush=True)
    return 0


def _fleet_faults(specs: Sequence[str], config: FleetConfig) -> dict[str, list[FaultWindow]]:
    devices = {d.device_id: d for d in fleet_devices(config)}
    faults: dict[str, list[FaultWindow]] = {}
    for item in specs:
        device_id, _, spec = item.partition("=")
        if device_id not in devices:
            raise ValueError(f"fault {item!r}: no device {device_id!r} (devices are {', '.join(devices)})")
        fault, *rest = spec.split(":")
        if fault == MeterFault.DUPLICATED_PATTERN and len(rest) == 3:
            donor = devices.get(rest[2])
            if donor is None or donor.site != devices[device_id].site:
                raise ValueError(f"fault {item!r}: the donor must be a device at the same site")
            spec = ":".join([fault, rest[0], rest[1], str(donor.config.seed)])
        faults.setdefault(device_id, []).append(parse_fault(spec, config.start_ms))
    return faults


def _print_progress(stats: FleetStats) -> None:
    print(f"  +{stats.simulated_hours:6.1f} h  {format_ts(stats.now_ms)}  reads {stats.reads:>8}  "
          f"readings {stats.readings:>9}  failed {stats.source_errors:>6}  held back {stats.held_back:>6}  "
          f"wall {stats.wall_s:7.1f} s", flush=True)


def _write_keys(fleet: Fleet, out_dir: Path) -> None:
    from simulators.fleet_agent import public_keys

    out_dir.mkdir(parents=True, exist_ok=True)
    for record in public_keys(fleet):
        (out_dir / f"{record.device_id}.pub.json").write_text(record.to_json())
    print(f"wrote {len(fleet.devices)} public keys to {out_dir}", flush=True)


def _run_fleet_agent(fleet: Fleet, args: argparse.Namespace) -> int:
    from edge_agent.config import AgentSettings, MqttConfig
    from simulators.fleet_agent import run_fleet_agent

    if args.speed <= 0 or args.data_dir is None:
        raise ValueError("--mqtt needs --speed > 0 and --data-dir")
    host, _, port = args.mqtt.partition(":")
    settings = AgentSettings(data_dir=args.data_dir, interval_s=args.interval_s, clock_speed=args.speed,
                             mqtt=MqttConfig(host=host, port=int(port or 1883)))
    run_fleet_agent(fleet, settings, project_id=args.project, hours=args.hours)
    print(f"done: the agent's outbox is in {args.data_dir}", flush=True)
    return 0


def _run_export(args: argparse.Namespace) -> int:
    exported = export_envelopes(args.out, devices=args.devices, envelopes=args.envelopes, seed=args.seed,
                                interval_s=args.interval_s, start_ms=args.start)
    for device in exported:
        print(f"{device.device_id}: {len(device.envelope_files)} envelopes, "
              f"public key {device.public_key_file.name}")
    first = exported[0]
    print(f"check one: mrv inspect {first.envelope_files[0]} --pubkey {first.public_key_file}")
    return 0
