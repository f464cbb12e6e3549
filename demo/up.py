"""`mrv up`: the whole pipeline on this machine, as a demo.

Project-managed PostgreSQL and Mosquitto (per-device passwords and ACL) → devices enrolled → an
ingest worker (a real `mrv ingest run` process) → simulated PV and wind plants read by a real edge
agent in accelerated time (signed, outboxed, published) → stored and quarantined counts → a
tampered and a garbage message, refused with their reasons → the Merkle log anchored and a
monitoring report (when those packages are present). Everything lives under --dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import SimulatedClock
from edge_agent.config import AgentSettings, MqttConfig
from ingest.broker_auth import write_broker_files, write_credential
from ingest.migrate import migrate, schema_status
from ingest.registry import MeterRole, PlantKind, broker_accounts, enroll_device, set_ingest_account
from managed_services._process import free_port
from managed_services.mosquitto import Mosquitto
from managed_services.postgres import Postgres
from protocol.keys import PublicKeyRecord
from protocol.topics import up_topic
from simulators.attacks import flip_payload_bit
from simulators.fleet import Fleet, FleetConfig
from simulators.signing import device_signer

PROJECT = "demo-solar-wind"
HOUR_MS = 3_600_000


def say(message: str) -> None:
    print(f"[mrv up] {message}", flush=True)


def counts(conn: psycopg.Connection) -> tuple[int, int, dict[str, int]]:
    envelopes = conn.execute("SELECT count(*) FROM envelopes").fetchone()
    readings = conn.execute("SELECT count(*) FROM readings").fetchone()
    reasons = dict(conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY 1").fetchall())
    return (envelopes[0] if envelopes else 0), (readings[0] if readings else 0), reasons


@contextmanager
def ingest_process(workdir: Path, broker: Mosquitto, db: Postgres, password: str) -> Iterator[Path]:
    """A real `mrv ingest run` worker, stopped with SIGTERM at the end; yields its log path."""
    password_file = write_credential(workdir / "broker" / "credentials", "ingest", password)
    config = workdir / "ingest.toml"
    health_port = free_port()
    config.write_text(
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "ingest"\n'
        f'password_file = "{password_file}"\nclient_id = "ingest-demo"\n\n'
        f'[database]\nconninfo = "{db.conninfo()}"\n\n[http]\nport = {health_port}\n')
    log_path = workdir / "ingest.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mrv_cli", "ingest", "run", "--config", str(config)],
                                stdout=log, stderr=log)
    try:
        wait_healthy(f"http://127.0.0.1:{health_port}/healthz", proc, log_path)
        yield log_path
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    """Until the worker is connected and subscribed: the broker keeps nothing for a subscription
    that does not exist yet, so the plants must not start before it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the ingest worker exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own localhost URL)
                body = response.read()
        except urllib.error.HTTPError as e:  # 503 until the first batch has been committed
            body = e.read()
        except OSError:
            body = b"{}"
        if json.loads(body or b"{}").get("broker_connected"):
            return
        time.sleep(0.3)
    raise TimeoutError(f"the ingest worker is not healthy after {timeout:.0f} s; see {log_path}")


def enroll_fleet(conn: psycopg.Connection, fleet: Fleet, valid_from: dt.datetime) -> dict[str, str]:
    """Enroll every simulated device; returns each device's broker password."""
    passwords: dict[str, str] = {}
    for device in fleet.devices:
        signer = device_signer(fleet.config.seed, device.device_id)
        kind = PlantKind.PV if device.config.kind.value == "pv" else PlantKind.WIND
        passwords[device.device_id] = enroll_device(
            conn, PublicKeyRecord(device.device_id, signer.public_key), project_id=PROJECT,
            role=MeterRole.MAIN, kind=kind, capacity_w=int(device.config.capacity_w), valid_from=valid_from)
    return passwords


def run_fleet(fleet: Fleet, passwords: dict[str, str], broker: Mosquitto, workdir: Path,
              conn: psycopg.Connection, hours: float, speed: float) -> int:
    """Run one gateway agent over the fleet for `hours` of simulated time, then until its outbox is
    empty; prints progress; returns the envelopes the agent produced."""
    settings = AgentSettings(data_dir=workdir / "gateway", interval_s=fleet.config.interval_s, clock_speed=speed,
                             mqtt=MqttConfig(host="127.0.0.1", port=broker.port), log_level="WARNING")
    sources = fleet.sources()
    devices = [Device(d.device_id, PROJECT, sources[d.device_id], device_signer(fleet.config.seed, d.device_id),
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
            say(f"simulated {simulated:%Y-%m-%d %H:%M} UTC | outbox {agent.outbox.status().queued:5d} | "
                f"stored {stored:6d} envelopes, {readings:7d} readings")
        timer.cancel()
        drain(agent)
        return sum(d.next_seq for d in agent.outbox.status().devices)


def drain(agent: EdgeAgent, timeout: float = 60) -> None:
    """Publish what the stopped agent left in its outbox (its publisher stops with its sampler)."""
    done = threading.Event()
    publisher = threading.Thread(target=agent.publish_loop.run, args=(done,), daemon=True)
    publisher.start()
    deadline = time.monotonic() + timeout
    while agent.outbox.status().queued and time.monotonic() < deadline:
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
    topic = up_topic(PROJECT, device_id)
    for payload in (flip_payload_bit(bytes(raw)), b"not an envelope"):
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def main(argv: list[str], prog: str = "mrv up") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog="example: mrv up --hours 24 --seconds 60   (one simulated day in about a minute)")
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="all state (wiped at start)")
    parser.add_argument("--plants", type=int, default=2, help="plants, alternating PV and wind")
    parser.add_argument("--devices", type=int, default=2, help="meters per plant")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours, ending now")
    parser.add_argument("--seconds", type=float, default=60.0, help="wall-clock seconds to simulate them in")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    workdir = args.dir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    speed = args.hours * 3600 / args.seconds

    with ExitStack() as stack:
        say("starting PostgreSQL ...")
        db = stack.enter_context(Postgres(workdir / "postgres"))
        conn = stack.enter_context(psycopg.connect(db.conninfo(), autocommit=True))
        migrate(conn)
        status = schema_status(conn)
        say(f"PostgreSQL on 127.0.0.1:{db.port}, schema v{status.version}, storage: {status.mode}")

        # The plants' simulated time runs from `hours` ago up to the moment they start.
        start_ms = (int(time.time() * 1000) + 10_000 - int(args.hours * HOUR_MS)) // 60_000 * 60_000
        fleet = Fleet(FleetConfig(plants=args.plants, devices_per_plant=args.devices, seed=args.seed,
                                  start_ms=start_ms, interval_s=60))
        passwords = enroll_fleet(conn, fleet, dt.datetime.fromtimestamp(start_ms / 1000 - 3600, dt.UTC))
        ingest_password = set_ingest_account(conn)
        auth = write_broker_files(broker_accounts(conn), workdir / "broker")
        say(f"enrolled {len(passwords)} devices of project {PROJECT}; broker ACL: each device publishes "
            "only under its own id")
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto", auth=auth))
        say(f"Mosquitto on {broker.url}")
        ingest_log = stack.enter_context(ingest_process(workdir, broker, db, ingest_password))
        say(f"ingest worker running (log {ingest_log})")

        say(f"{len(passwords)} simulated meters: {args.hours:g} h of 1-minute readings at {speed:.0f}x ...")
        produced = run_fleet(fleet, passwords, broker, workdir, conn, args.hours, speed)
        send_bad_messages(conn, broker, passwords)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(counts(conn)[2].values()) < 2:
            time.sleep(0.5)
        stored, readings, reasons = counts(conn)
        say(f"produced {produced} signed envelopes; stored {stored} envelopes with {readings} readings; "
            f"lost {produced - stored}")
        say("quarantined: " + (", ".join(f"{n} {r}" for r, n in reasons.items()) or "none"))

    say(f"done. State under {workdir}: postgres/, mosquitto/, gateway/outbox.sqlite, ingest.log")
    return 0 if produced == stored else 1
