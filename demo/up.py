"""`mrv up`: the whole pipeline on this machine, as a demo.

Project-managed PostgreSQL and Mosquitto (per-device passwords and ACL) → devices enrolled → an
ingest worker (a real `mrv ingest run` process) → simulated PV and wind plants read by a real edge
agent in accelerated time (signed, outboxed, published) → stored and quarantined counts → a
tampered and a garbage message, refused with their reasons → the Merkle log anchored and a
monitoring report (when those packages are present) → the operator console (`mrv console serve`) on
a free port, serving until Ctrl-C. Everything lives under --dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from anchoring.keyfile import read_log_key
from anchoring.sequencer import log_status
from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import SimulatedClock
from edge_agent.config import AgentSettings, MqttConfig
from edge_agent.sources import MeterSource
from ingest.broker_auth import write_broker_files, write_credential
from ingest.migrate import migrate, schema_status
from ingest.registry import MeterRole, PlantKind, broker_accounts, enroll_device, set_ingest_account
from managed_services._process import free_port, stop_process
from managed_services.anvil import Anvil
from managed_services.mosquitto import Mosquitto
from managed_services.postgres import Postgres
from mrv_engine.console import users
from protocol.envelope import Reading
from protocol.keys import PublicKeyRecord
from protocol.metrics import Quality
from protocol.topics import up_topic
from simulators.attacks import flip_payload_bit
from simulators.fleet import Fleet, FleetConfig
from simulators.signing import device_signer

PROJECTS = {"pv": "demo-solar", "wind": "demo-wind"}  # one project per technology
ORIGIN = "demo.mrv.local/log"
DAY_MS = 86_400_000


def say(message: str) -> None:
    print(f"[mrv up] {message}", flush=True)


def counts(conn: psycopg.Connection) -> tuple[int, int, dict[str, int]]:
    envelopes = conn.execute("SELECT count(*) FROM envelopes").fetchone()
    readings = conn.execute("SELECT count(*) FROM readings").fetchone()
    reasons = dict(conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY 1").fetchall())
    return (envelopes[0] if envelopes else 0), (readings[0] if readings else 0), reasons


def mrv_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mrv_cli", *args]


@contextmanager
def background(command: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A service process for the demo's lifetime, stopped with SIGTERM (then SIGKILL) at the end."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        stop_process(proc, 15)


@contextmanager
def ingest_process(workdir: Path, broker: Mosquitto, db: Postgres, password: str) -> Iterator[Path]:
    """A real `mrv ingest run` worker; yields its log path once it is subscribed."""
    password_file = write_credential(workdir / "broker" / "credentials", "ingest", password)
    config = workdir / "ingest.toml"
    health_port = free_port()
    config.write_text(
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "ingest"\n'
        f'password_file = "{password_file}"\nclient_id = "ingest-demo"\n\n'
        f'[database]\nconninfo = "{db.conninfo()}"\n\n[http]\nport = {health_port}\n')
    log_path = workdir / "ingest.log"
    with background(mrv_command("ingest", "run", "--config", str(config)), log_path) as proc:
        wait_healthy(f"http://127.0.0.1:{health_port}/healthz", proc, log_path)
        yield log_path


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60, *,
                 ready: str = "broker_connected", name: str = "the ingest worker") -> None:
    """Until the service's health document says `ready` (the ingest worker: connected and subscribed,
    as the broker keeps nothing for a subscription that does not exist yet, so the plants must not
    start before it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own localhost URL)
                body = response.read()
        except urllib.error.HTTPError as e:  # 503 until the first batch has been committed
            body = e.read()
        except OSError:
            body = b"{}"
        if json.loads(body or b"{}").get(ready):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{name} is not healthy after {timeout:.0f} s; see {log_path}")


def enroll_fleet(conn: psycopg.Connection, fleet: Fleet, valid_from: dt.datetime) -> dict[str, str]:
    """Enroll every simulated device; returns each device's broker password."""
    passwords: dict[str, str] = {}
    for device in fleet.devices:
        signer = device_signer(fleet.config.seed, device.device_id)
        kind = PlantKind(device.config.kind.value)
        passwords[device.device_id] = enroll_device(
            conn, PublicKeyRecord(device.device_id, signer.public_key), project_id=PROJECTS[kind.value],
            role=MeterRole.MAIN, kind=kind, capacity_w=int(device.config.capacity_w), valid_from=valid_from)
    return passwords


class AsMeteredSource:
    """A simulated plant presented as its revenue meter would report it, without the SIMULATED flag,
    so that the demo's monitoring report credits its energy. Demo only: simulated data anywhere
    else keeps the flag and the MRV engine never credits it."""

    def __init__(self, source: MeterSource) -> None:
        self._source = source

    def read(self, now_ms: int) -> list[Reading]:
        return [replace(r, quality=r.quality & ~int(Quality.SIMULATED)) for r in self._source.read(now_ms)]

    def close(self) -> None:
        self._source.close()


def run_fleet(fleet: Fleet, passwords: dict[str, str], broker: Mosquitto, workdir: Path,
              conn: psycopg.Connection, hours: float, speed: float) -> int:
    """Run one gateway agent over the fleet for `hours` of simulated time, then until its outbox is
    empty; prints progress; returns the envelopes the agent produced."""
    settings = AgentSettings(data_dir=workdir / "gateway", interval_s=fleet.config.interval_s, clock_speed=speed,
                             mqtt=MqttConfig(host="127.0.0.1", port=broker.port), log_level="WARNING")
    sources = fleet.sources()
    devices = [Device(d.device_id, PROJECTS[d.config.kind.value], AsMeteredSource(sources[d.device_id]),
                      device_signer(fleet.config.seed, d.device_id),
                      passwords[d.device_id]) for d in fleet.devices]
    clock = SimulatedClock(speed, fleet.config.start_ms)
    with EdgeAgent(settings, devices, clock) as agent:
        # Stop sampling exactly when simulated time reaches the present: later readings would be
        # (rightly) quarantined by ingest as future timestamps.
        timer = threading.Timer(hours * 3600 / speed, agent.stop)
        runner = threading.Thread(target=agent.run, name="demo-agent", daemon=True)
        timer.start()
        runner.start()
        while runner.is_alive():
            time.sleep(1)
            stored, readings, _ = counts(conn)
            simulated = dt.datetime.fromtimestamp(clock.now_ms() / 1000, dt.UTC)
            outbox = agent.outbox.status()
            say(f"simulated {simulated:%Y-%m-%d %H:%M} UTC | outbox {outbox.queued:5d} queued, "
                f"{outbox.published:5d} awaiting receipt | stored {stored:6d} envelopes, {readings:7d} readings")
        timer.cancel()
        status = agent.outbox.status()
    if status.queued or status.published:
        # The publisher stops with the sampler: a fresh agent on the same outbox publishes the rest and
        # takes ingest's receipts, so the outbox ends empty.
        with EdgeAgent(settings, devices, clock) as publisher_only:
            drain(publisher_only)
    return sum(d.next_seq for d in status.devices)


def drain(agent: EdgeAgent, timeout: float = 60) -> None:
    """Publish what is queued in the agent's outbox, without sampling, until ingest has receipted it all."""
    done = threading.Event()
    publisher = threading.Thread(target=agent.publish_loop.run, args=(done,), daemon=True)
    publisher.start()
    deadline = time.monotonic() + timeout
    while (status := agent.outbox.status()).queued + status.published and time.monotonic() < deadline:
        time.sleep(0.2)
    done.set()
    agent.publish_loop.wake()
    publisher.join(10)


def send_bad_messages(conn: psycopg.Connection, broker: Mosquitto, passwords: dict[str, str]) -> None:
    """A stored envelope with one bit flipped, and garbage, both from an enrolled device."""
    row = conn.execute("SELECT device_id, raw FROM envelopes ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return
    device_id, raw = row
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}-tamper")
    client.username_pw_set(device_id, passwords[device_id])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    project = conn.execute("SELECT project_id FROM devices WHERE id = %s", [device_id]).fetchone()
    topic = up_topic(project[0] if project else "", device_id)
    for payload in (flip_payload_bit(bytes(raw)), b"not an envelope"):
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def sequencer_command(workdir: Path, db: Postgres, ledger: list[str], *extra: str) -> list[str]:
    return mrv_command("anchor", "run", "--conninfo", db.conninfo(), "--log-key", str(workdir / "log.key"),
                       *ledger, *extra)


def start_ledger(stack: ExitStack, workdir: Path) -> tuple[list[str], list[str], str]:
    """anvil with the CheckpointAnchor contract deployed (npm installs anvil when missing), else the
    embedded local ledger file. Returns the sequencer's and the verifier's ledger options, and a name."""
    try:
        anvil = stack.enter_context(Anvil(workdir / "anvil.log"))
        deployed = subprocess.run(mrv_command("anchor", "deploy", "--rpc", anvil.rpc_url),
                                  check=True, capture_output=True, text=True)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        say(f"anvil unavailable ({str(e)[:120]}); anchoring to the local ledger file instead")
        path = str(workdir / "ledger.jsonl")
        return ["--ledger", f"local:{path}"], ["--ledger-file", path], f"local ledger {path}"
    contract = deployed.stdout.strip().splitlines()[-1]
    return (["--ledger", f"evm:{anvil.rpc_url}", "--evm-contract", contract], ["--rpc", anvil.rpc_url],
            f"EVM contract {contract} on anvil {anvil.rpc_url}")


def anchor_final(workdir: Path, db: Postgres, conn: psycopg.Connection, ledger: list[str]) -> dict[str, Any]:
    """Log every stored envelope, anchor the latest checkpoint, and return `mrv anchor status`."""
    subprocess.run(sequencer_command(workdir, db, ledger, "--once"), check=True, capture_output=True)
    return log_status(conn)


def verify_evidence(bundle: Path, verify_ledger: list[str]) -> str:
    """`mrv verify` on a report's evidence bundle, as a third-party verifier would run it."""
    if not bundle.exists():
        return "no bundle written (see the report's notes)"
    result = subprocess.run(mrv_command("verify", str(bundle), *verify_ledger),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return f"FAILED: {result.stderr.strip()}"
    return result.stdout.strip().splitlines()[-1]


def project_toml(project_id: str, kind: str, meters: list[tuple[str, float]]) -> str:
    """The demo projects' configuration: ACM0002 greenfield, combined-margin factor from a
    (fictitious, demo) design document; real projects take these from their registered PDD."""
    technology = "solar_pv" if kind == "pv" else "wind"
    sensor = "irradiance_device" if kind == "pv" else "wind_speed_device"
    meter_tables = "".join(
        f'\n[[meters]]\nid = "M-{device}"\nrole = "main"\ndevice_id = "{device}"\naccuracy_class = "0.2S"\n'
        f'capacity_kw = {capacity_w / 1000:g}\n{sensor} = "{device}"\n' for device, capacity_w in meters)
    total_mw = sum(capacity for _, capacity in meters) / 1e6
    return (f'project_id = "{project_id}"\ntechnology = "{technology}"\n'
            f'nameplate_capacity_mw = {{ value = {total_mw:g}, source = "demo: simulated plant" }}\n'
            'utc_offset_minutes = 0\ncrediting_period = { start = 2024-01-01, end = 2030-12-31 }\n'
            'methodology = { id = "ACM0002" }\nclaims = { declared = ["CDM"] }\nmonitoring = { interval_s = 60 }\n'
            'site = { latitude = 37.5, longitude = 105.0 }\n\n[grid_ef]\nkind = "combined_margin"\n'
            'ef_om = { value = 0.8, source = "demo: illustrative OM" }\n'
            'ef_bm = { value = 0.4, source = "demo: illustrative BM" }\n' + meter_tables)


def monitoring_report(workdir: Path, db: Postgres, fleet: Fleet, kind: str, project_id: str) -> tuple[Path, str]:
    """`mrv report` over the simulated days, with its evidence bundle; returns the report's
    directory and a one-line summary."""
    meters = [(d.device_id, d.config.capacity_w) for d in fleet.devices if d.config.kind.value == kind]
    config = workdir / "projects" / f"{project_id}.toml"  # where the console's configuration points
    config.parent.mkdir(exist_ok=True)
    config.write_text(project_toml(project_id, kind, meters))
    first = dt.datetime.fromtimestamp(fleet.config.start_ms / 1000, dt.UTC).date()
    last = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    out = workdir / "reports" / project_id
    result = subprocess.run(mrv_command("report", project_id, "--from", str(first), "--to", str(last),
                                        "--config", str(config), "--conninfo", db.conninfo(), "--out", str(out),
                                        "--log-vkey", read_log_key(workdir / "log.key").verifier.vkey),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return out, f"report {project_id} FAILED: {result.stderr.strip()[-300:]}"
    totals = json.loads((out / "report.json").read_text()).get("totals", {})
    shown = ", ".join(f"{k} {totals.get(k)}" for k in ("net_wh", "reductions_tco2e", "completeness", "flags"))
    return out, f"report {project_id}: {shown} -> {out / 'report.html'}"


def write_secret(path: Path, text: str) -> Path:
    """A file only its owner reads (created 0600, never wider for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    return path


@contextmanager
def console_process(workdir: Path, db: Postgres, conn: psycopg.Connection
                    ) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """A real `mrv console serve` on a free port over the demo's database and project configurations,
    with an admin whose generated password is written to a 0600 file; yields (URL, password file, process)."""
    password = users.new_password()
    users.add_user(conn, "admin", users.Role.ADMIN, password)
    password_file = write_secret(workdir / "console-admin.password", password)
    port = free_port()
    config = workdir / "console.toml"
    vkey = read_log_key(workdir / "log.key").verifier.vkey
    # JSON strings are TOML basic strings; relative paths are relative to the configuration file.
    config.write_text(f"conninfo = {json.dumps(db.conninfo())}\nport = {port}\nprojects_dir = \"projects\"\n"
                      f"reports_dir = \"console/reports\"\nlog_vkey = {json.dumps(vkey)}\n")
    log_path = workdir / "console.log"
    with background(mrv_command("console", "serve", "--config", str(config)), log_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/healthz", proc, log_path, ready="status", name="the console")
        yield url, password_file, proc


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_until_interrupted(console: subprocess.Popen[bytes]) -> bool:
    """Keep every service running until Ctrl-C or SIGTERM (True), or until the console stops by itself
    (False). Either way the caller's ExitStack then stops every service."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while console.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        print(flush=True)
        return True
    return False


def main(argv: list[str], prog: str = "mrv up") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog="example: mrv up --days 1 --seconds 60   (yesterday, simulated in about a minute)")
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="all state (wiped at start)")
    parser.add_argument("--plants", type=int, default=2, help="plants, alternating PV and wind")
    parser.add_argument("--devices", type=int, default=2, help="meters per plant")
    parser.add_argument("--days", type=int, default=1, help="whole UTC days simulated, ending at today's midnight")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall-clock seconds to simulate them in")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--exit", action="store_true",
                        help="stop everything once the pipeline has run, instead of serving the console until Ctrl-C")
    args = parser.parse_args(argv)

    workdir = args.dir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    hours = args.days * 24
    speed = hours * 3600 / args.seconds

    with ExitStack() as stack:
        say("starting PostgreSQL ...")
        db = stack.enter_context(Postgres(workdir / "postgres"))
        conn = stack.enter_context(psycopg.connect(db.conninfo(), autocommit=True))
        migrate(conn)
        status = schema_status(conn)
        say(f"PostgreSQL on 127.0.0.1:{db.port}, schema v{status.version}, storage: {status.mode}")

        # Whole UTC days up to today's midnight, so each reported day is fully covered by readings.
        start_ms = (int(time.time() * 1000) // DAY_MS - args.days) * DAY_MS
        fleet = Fleet(FleetConfig(plants=args.plants, devices_per_plant=args.devices, seed=args.seed,
                                  start_ms=start_ms, interval_s=60))
        passwords = enroll_fleet(conn, fleet, dt.datetime.fromtimestamp(start_ms / 1000 - 3600, dt.UTC))
        ingest_password = set_ingest_account(conn)
        auth = write_broker_files(broker_accounts(conn), workdir / "broker")
        say(f"enrolled {len(passwords)} devices in projects {', '.join(PROJECTS.values())}; "
            "broker ACL: each device publishes "
            "only under its own id")
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto", auth=auth))
        say(f"Mosquitto on {broker.url}")
        ingest_log = stack.enter_context(ingest_process(workdir, broker, db, ingest_password))
        say(f"ingest worker running (log {ingest_log})")
        subprocess.run(mrv_command("anchor", "keygen", "--log-key", str(workdir / "log.key"), "--origin", ORIGIN),
                       check=True, capture_output=True)
        ledger, verify_ledger, ledger_name = start_ledger(stack, workdir)
        sequencer = stack.enter_context(background(
            sequencer_command(workdir, db, ledger, "--anchor-every", "10"), workdir / "sequencer.log"))
        say(f"sequencer running: Merkle log {ORIGIN}, checkpoints anchored to {ledger_name}")

        say(f"{len(passwords)} simulated meters: {hours} h of 1-minute readings at {speed:.0f}x ...")
        produced = run_fleet(fleet, passwords, broker, workdir, conn, hours, speed)
        send_bad_messages(conn, broker, passwords)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(counts(conn)[2].values()) < 2:
            time.sleep(0.5)
        stored, readings, reasons = counts(conn)
        say(f"produced {produced} signed envelopes; stored {stored} envelopes with {readings} readings; "
            f"lost {produced - stored}")
        say("quarantined: " + (", ".join(f"{n} {r}" for r, n in reasons.items()) or "none"))

        sequencer.terminate()
        sequencer.wait(15)
        status = anchor_final(workdir, db, conn, ledger)
        checkpoint = status["checkpoint"] or {}
        say(f"Merkle log: {status['log_size']} leaves; latest checkpoint size {checkpoint.get('size')} "
            f"root {str(checkpoint.get('root'))[:16]}...; anchors: "
            + ", ".join(f"{a['count']} {a['status']} on {a['ledger']}" for a in status["anchors"]))
        for kind, project in PROJECTS.items():
            if not any(d.config.kind.value == kind for d in fleet.devices):
                continue
            out, summary = monitoring_report(workdir, db, fleet, kind, project)
            say(summary)
            bundle = out / "report.bundle.json"
            say(f"evidence bundle {bundle}: mrv verify -> {verify_evidence(bundle, verify_ledger)}")

        say(f"done. Look under {workdir}: reports/*/report.html (monitoring reports), reports/*/report.bundle.json "
            "(evidence: `mrv verify FILE` offline; the ledger check needs the demo's anvil, which stops with it), "
            "gateway/outbox.sqlite, ingest.log, sequencer.log")
        if not args.exit:
            url, password_file, console = stack.enter_context(console_process(workdir, db, conn))
            first_day = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).date()
            last_day = first_day + dt.timedelta(days=args.days - 1)
            say(f"console: {url}  (log in as admin; the password is in {password_file}: "
                f"cat {password_file})")
            say(f"the simulated days' report: {url}/projects/{next(iter(PROJECTS.values()))}/reports/"
                f"{first_day}..{last_day}")
            say("serving the console, broker, database and ledger; Ctrl-C stops them all")
            if not serve_until_interrupted(console):
                say(f"the console stopped by itself (exit {console.returncode}); see {workdir / 'console.log'}")
                return 1
    return 0 if produced == stored else 1
