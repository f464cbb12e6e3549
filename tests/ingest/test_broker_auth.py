"""Broker credentials and ACL: mosquitto's hash format both ways, and the rendered ACL enforced by the
real Mosquitto (a device publishing under another device's id is dropped by the broker)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.broker_auth import (
    BrokerAccount,
    check_password,
    hash_password,
    render_acl,
    render_password_file,
    write_broker_files,
)
from ingest.registry import broker_accounts, set_ingest_account
from managed_services.mosquitto import Mosquitto
from protocol import SHARED_UP_SUBSCRIPTION, encode_receipt, receipt_topic, state_topic, up_topic
from tests.fix_mqtt import publish_once
from tests.ingest.helpers import Device, enroll, wait_until


def test_our_hash_is_mosquittos_format_and_reads_mosquitto_passwd_output(tmp_path: Path) -> None:
    ours = hash_password("s3cret", salt=bytes(range(12)))
    assert ours.startswith("$7$101$AAECAwQFBgcICQoL$") and check_password("s3cret", ours)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "alice", "wonderland"], check=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert check_password("wonderland", theirs) and not check_password("wonderland!", theirs)


def test_rendered_files() -> None:
    accounts = [BrokerAccount("meter-1", "$7$h1", "device", "meter-1", "plant-1"),
                BrokerAccount("meter-2", "$7$h2", "device", "meter-2", "plant-1", enabled=False),
                BrokerAccount("ingest", "$7$h3", "ingest")]
    assert render_password_file(accounts) == "meter-1:$7$h1\ningest:$7$h3\n"
    acl = render_acl(accounts)
    assert acl.index("user ingest") < acl.index("user meter-1") and "meter-2" not in acl
    up, state = up_topic("plant-1", "meter-1"), state_topic("plant-1", "meter-1")
    assert f"topic write {up}\ntopic write {state}\ntopic read {receipt_topic('plant-1', 'meter-1')}" in acl
    assert "topic read $share/ingest/mrv/v1/#\ntopic write mrv/v1/+/+/receipt" in acl


class _Subscriber:
    def __init__(self, port: int, username: str | None, password: str | None, topic: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)

        def on_connect(c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
            if getattr(reason, "is_failure", False):
                self.refused.set()
            else:
                c.subscribe(topic, qos=1)
                self.connected.set()

        self.client.on_connect = on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def secured_broker(pg_conninfo: str, tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    devices = [Device("meter-1", "plant-1"), Device("meter-2", "plant-1")]
    passwords = enroll(pg_conninfo, devices)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        passwords["ingest"] = set_ingest_account(conn)
        # Not under tmp_path: mosquitto reads these after dropping root, and pytest's tmp is root-only.
        broker_dir = Path(tempfile.mkdtemp(prefix="mrv-broker-"))
        broker_dir.chmod(0o755)
        auth = write_broker_files(broker_accounts(conn), broker_dir)
    broker = Mosquitto(tmp_path / "mosquitto", auth=auth).start()
    try:
        yield broker, passwords
    finally:
        broker.kill()
        shutil.rmtree(broker_dir)


def _publish(port: int, username: str | None, password: str | None, topic: str) -> bool:
    """Publish one QoS 1 message as an MQTT 3.1.1 client; False when the connection is refused."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{username}-{time.monotonic_ns()}")
    if username is not None:
        client.username_pw_set(username, password)
    answered, accepted = threading.Event(), threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", True):
            accepted.set()
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not (answered.wait(5) and accepted.is_set()):
            return False
        client.publish(topic, b"payload from " + str(username).encode(), qos=1).wait_for_publish(5)
        return True
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.integration
def test_the_broker_enforces_the_acl(secured_broker: tuple[Mosquitto, dict[str, str]]) -> None:
    broker, passwords = secured_broker
    shared = _Subscriber(broker.port, "ingest", passwords["ingest"], SHARED_UP_SUBSCRIPTION)
    spy = _Subscriber(broker.port, "meter-2", passwords["meter-2"], "mrv/v1/#")  # devices may not read
    anonymous = _Subscriber(broker.port, None, None, "#")
    wrong = _Subscriber(broker.port, "ingest", "not-the-password", "#")
    try:
        assert shared.connected.wait(5) and spy.connected.wait(5)
        assert anonymous.refused.wait(5) and wrong.refused.wait(5)
        own = up_topic("plant-1", "meter-1")
        assert _publish(broker.port, "meter-1", passwords["meter-1"], own)
        # Under another device's id, and under another project: both dropped by the broker.
        assert _publish(broker.port, "meter-1", passwords["meter-1"], up_topic("plant-1", "meter-2"))
        assert _publish(broker.port, "meter-1", passwords["meter-1"], up_topic("plant-9", "meter-1"))
        assert _publish(broker.port, "meter-2", passwords["meter-2"], up_topic("plant-1", "meter-2"))
        assert not _publish(broker.port, None, None, own)
        time.sleep(0.5)
        topics = sorted(topic for topic, _ in shared.received)
        assert topics == [own, up_topic("plant-1", "meter-2")]
        assert dict(shared.received)[up_topic("plant-1", "meter-2")] == b"payload from meter-2"
        assert spy.received == []
    finally:
        for s in (shared, spy, anonymous, wrong):
            s.close()


def _publish_as_ingest(port: int, password: str, topic: str, payload: bytes) -> None:
    publish_once(port, topic, payload, username="ingest", password=password)


@pytest.mark.integration
def test_receipts_go_from_ingest_to_their_own_device_only(secured_broker: tuple[Mosquitto, dict[str, str]]) -> None:
    broker, passwords = secured_broker
    own, other = receipt_topic("plant-1", "meter-2"), receipt_topic("plant-1", "meter-1")
    victim = _Subscriber(broker.port, "meter-2", passwords["meter-2"], own)
    spy = _Subscriber(broker.port, "meter-1", passwords["meter-1"], own)  # another device's receipts
    watcher = _Subscriber(broker.port, "meter-1", passwords["meter-1"], other)
    try:
        assert victim.connected.wait(5) and spy.connected.wait(5) and watcher.connected.wait(5)
        time.sleep(0.3)  # the subscriptions are in place
        # A device may not write receipts: neither forged for another device nor for itself.
        assert _publish(broker.port, "meter-1", passwords["meter-1"], own)
        assert _publish(broker.port, "meter-1", passwords["meter-1"], other)
        _publish_as_ingest(broker.port, passwords["ingest"], own, encode_receipt([(0, 4)]))
        wait_until(lambda: victim.received != [], 5, "the ingest receipt")
        time.sleep(0.3)
        assert victim.received == [(own, encode_receipt([(0, 4)]))]
        assert spy.received == [] and watcher.received == []
    finally:
        for s in (victim, spy, watcher):
            s.close()
