"""The real Mosquitto for integration tests: one broker per test on a free port, data in tmp_path."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from managed_services.mosquitto import Mosquitto


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A directory mosquitto's service user can reach.

    pytest's tmp_path lies under a 0700 directory, and mosquitto started as root drops to user
    `mosquitto` before reading its password file and saving its persistence file; there it could
    do neither, and sessions would be lost across a restart.
    """
    path = Path(tempfile.mkdtemp(prefix="mrv-broker-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mosquitto(broker_dir: Path) -> Iterator[Mosquitto]:
    """A broker whose sessions and queued messages survive stop() / start()."""
    broker = Mosquitto(broker_dir / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def project_id() -> str:
    """A unique project id per test, so tests sharing a broker never see each other's topics."""
    return f"p-{uuid.uuid4().hex[:10]}"


def publish_once(port: int, topic: str, payload: bytes, *, username: str | None = None,
                 password: str | None = None) -> None:
    """Connect, publish one QoS 1 message, wait for its PUBACK, disconnect (MQTT 5)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
