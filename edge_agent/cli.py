"""`mrv edge keygen | run | status`: the gateway agent's command line."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.agent import EdgeAgent
from edge_agent.config import EdgeConfig, load_config
from edge_agent.errors import EdgeError
from edge_agent.keystore import FileKeyStore, write_public_record
from edge_agent.outbox import Outbox, OutboxStatus
from edge_agent.sources import SourceError
from mrv_common.logs import configure_logging

_EXAMPLES = {
    "keygen": "example:\n  mrv edge keygen --device-id inv-1 --key-file /var/lib/mrv-edge/keys/inv-1.key "
              "--public-out inv-1.pub.json",
    "run": "example:\n  mrv edge run --config /etc/mrv-edge/edge.toml\n"
           "  MRV_EDGE__MQTT__HOST=broker.lan mrv edge run --config edge.toml",
    "status": "example:\n  mrv edge status --config /etc/mrv-edge/edge.toml\n"
              "  mrv edge status --config edge.toml --json",
}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Gateway agent: read meters, sign, buffer in the outbox, publish over MQTT.",
        epilog="\n\n".join(_EXAMPLES.values()), formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_, description=help_, epilog=_EXAMPLES[name],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    keygen = command("keygen", "create a device's signing key (file mode 0600) and export its public key")
    keygen.add_argument("--device-id", required=True)
    keygen.add_argument("--key-file", required=True, type=Path, help="where to create the secret key")
    keygen.add_argument("--public-out", required=True, type=Path,
                        help="where to write the public-key record for enrollment (JSON)")

    run = command("run", "run the agent until SIGTERM or Ctrl-C")
    run.add_argument("--config", required=True, type=Path, help="the agent's TOML file")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                     help="overrides log_level of the config")

    status = command("status", "queue depth, last seq and last acknowledgement per device, and alarms "
                               "(reads the outbox; fine while the agent runs)")
    status.add_argument("--config", required=True, type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str], prog: str = "mrv edge") -> int:
    args = _parser(prog).parse_args(argv)
    try:
        match args.command:
            case "keygen":
                return _keygen(args)
            case "run":
                return _run(args)
            case "status":
                return _status(args)
    except (EdgeError, SourceError, ValueError) as e:
        print(f"{prog} {args.command}: {e}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {args.command}")


def _keygen(args: argparse.Namespace) -> int:
    record = FileKeyStore({args.device_id: args.key_file}).generate(args.device_id)
    write_public_record(record, args.public_out)
    print(f"device {record.device_id}: key {args.key_file} (mode 0600), kid {record.kid.hex()}; "
          f"enroll it with {args.public_out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(args.log_level or config.log_level)
    with EdgeAgent.from_config(config) as agent:
        agent.run()
    return 0


def _status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with Outbox(config.outbox_path, max_bytes=config.outbox.max_bytes, policy=config.outbox.policy,
                create=False) as outbox:
        status = outbox.status()
    print(json.dumps(_status_json(status), indent=2) if args.json else _status_text(status, config))
    return 0


def _status_json(status: OutboxStatus) -> dict[str, Any]:
    return {
        "outbox": str(status.path), "max_bytes": status.max_bytes, "policy": status.policy.value,
        "used_bytes": status.used_bytes, "queued": status.queued,
        "published": status.published,
        "devices": [dict(dataclasses.asdict(d), last_seq=d.last_seq, queued=d.queued) for d in status.devices],
        "alarms": [dict(alarm.to_json(), device_id=alarm.device_id) for alarm in status.alarms],
    }


def _status_text(status: OutboxStatus, config: EdgeConfig) -> str:
    lines = [f"outbox {status.path}: {status.queued} queued, {status.published} published awaiting ingest's "
             f"receipt, {_size(status.used_bytes)} of "
             f"{_size(status.max_bytes)} ({100 * status.used_bytes / status.max_bytes:.1f} %), "
             f"policy {status.policy.value}"]
    known = {d.device_id: d for d in status.devices}
    projects = {d.device_id: d.project_id for d in config.devices}
    rows = [("DEVICE", "PROJECT", "QUEUED", "PUBLISHED", "LAST SEQ", "LAST RECEIPT", "RECEIPT AT")]
    for device_id in sorted(projects.keys() | known.keys()):
        d = known.get(device_id)
        if d is None:
            rows.append((device_id, projects[device_id], "0", "0", "-", "-", "-"))
        else:
            receipt_at = "-" if d.receipted_ms is None else _time(d.receipted_ms)
            rows.append((device_id, projects.get(device_id, "(not configured)"), str(d.queued), str(d.published),
                         _opt(d.last_seq), _opt(d.receipted_seq), receipt_at))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    lines.append("alarms: none" if not status.alarms else "alarms:")
    lines += [f"  {alarm.device_id} {alarm.code.value}: {alarm.describe()}; "
              f"{_time(alarm.first_ms)} .. {_time(alarm.last_ms)}" for alarm in status.alarms]
    return "\n".join(lines)


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")
