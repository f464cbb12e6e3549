from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.clock import SimulatedClock
from edge_agent.config import MqttConfig
from edge_agent.outbox import Draft, Outbox
from edge_agent.publisher import Publisher, PublishLoop, window_size
from ingest.broker_auth import BrokerAccount, hash_password, write_broker_files
from managed_services.mosquitto import Mosquitto
from protocol import (
    Ed25519Signer,
    Metric,
    Reading,
    Signer,
    encode_receipt,
    parse_envelope,
    receipt_topic,
    state_topic,
    up_topic,
)
from tests.edge_agent.helpers import Collector, check_chains, wait_until
from tests.fix_mqtt import publish_once

pytestmark = pytest.mark.integration

T0 = 1_750_000_000_000


@contextlib.contextmanager
def running(target: Callable[[], None], stop: Callable[[], None]) -> Iterator[None]:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join(15)
        assert not thread.is_alive(), "did not stop"


@contextlib.contextmanager
def publishing(outbox_path: Path, project_id: str, devices: list[str], mqtt: MqttConfig,
               passwords: dict[str, str] | None = None) -> Iterator[list[Publisher]]:
    clock = SimulatedClock(1, T0)
    publishers = [Publisher(d, project_id, mqtt, password=(passwords or {}).get(d),
                            window=window_size(mqtt, len(devices)), clock=clock) for d in devices]
    loop = PublishLoop(publishers, outbox_path, clock, receipt_grace_s=mqtt.receipt_grace_s)
    stop = threading.Event()
    with running(lambda: loop.run(stop), stop.set):
        yield publishers


def fill(outbox: Outbox, signers: dict[str, Signer], intervals: int) -> None:
    for i in range(intervals):
        t = T0 + i * 10_000
        outbox.append([Draft(d, t, (Reading(Metric.ENERGY_EXPORT_WH, t, 100 * i),), s)
                       for d, s in signers.items()], t)


def test_a_backlog_is_published_in_seq_order_and_kept_until_receipted(
        mosquitto: Mosquitto, tmp_path: Path, project_id: str) -> None:
    signers: dict[str, Signer] = {"inv-1": Ed25519Signer.generate(), "inv-2": Ed25519Signer.generate()}
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        fill(outbox, signers, 300)
    collector = Collector(mosquitto.port, f"mrv/v1/{project_id}/+/up", "collector")
    mqtt = MqttConfig(port=mosquitto.port, max_inflight=40)  # windows of 20: the backlog takes many rounds
    with publishing(path, project_id, list(signers), mqtt), Outbox(path) as outbox:
        wait_until(lambda: outbox.status().queued == 0, 20, "the outbox to drain")
        status = outbox.status()
    collector.close()
    # Acknowledged by the broker, so published; no ingest, so no receipt: all kept.
    assert {(d.device_id, d.published, d.receipted_seq) for d in status.devices} == {
        ("inv-1", 300, None), ("inv-2", 300, None)}
    order = check_chains(collector.payloads(), {d: s.public_key for d, s in signers.items()},
                         {"inv-1": 300, "inv-2": 300})
    assert all(seqs == sorted(seqs) for seqs in order.values())


def test_retained_state_says_online_with_alarms_then_offline(mosquitto: Mosquitto, tmp_path: Path,
                                                            project_id: str) -> None:
    signer = Ed25519Signer.generate()
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, max_bytes=2000) as outbox:  # room for ~5 envelopes: the rest is evicted
        fill(outbox, {"inv-1": signer}, 20)
    topic = state_topic(project_id, "inv-1")
    mqtt = MqttConfig(port=mosquitto.port)
    with publishing(path, project_id, ["inv-1"], mqtt):
        watcher = Collector(mosquitto.port, topic, "watcher-1")
        wait_until(lambda: bool(watcher.messages), 10, "the retained birth message")
        watcher.close()
        online = json.loads(watcher.messages[-1][1])
    assert online["status"] == "online"
    [alarm] = online["alarms"]
    assert alarm["code"] == "outbox_evicted" and alarm["ranges"][0][0] == 0 and alarm["count"] >= 10
    watcher = Collector(mosquitto.port, topic, "watcher-2")
    wait_until(lambda: bool(watcher.messages), 10, "the retained offline message")
    watcher.close()
    assert json.loads(watcher.messages[-1][1])["status"] == "offline"


@pytest.fixture
def secured_broker(broker_dir: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    """A broker with per-device passwords and an ACL: each device may publish only to its own
    topics in project `park`."""
    passwords = {"inv-1": "right-password-1", "inv-2": "right-password-2"}
    accounts = [BrokerAccount(d, hash_password(p), "device", device_id=d, project_id="park")
                for d, p in passwords.items()]
    auth = write_broker_files(accounts, broker_dir / "auth")
    broker = Mosquitto(broker_dir / "mosquitto", auth=auth).start()
    try:
        yield broker, passwords
    finally:
        broker.kill()


def test_devices_publish_with_their_own_credentials(secured_broker: tuple[Mosquitto, dict[str, str]],
                                                    tmp_path: Path) -> None:
    broker, passwords = secured_broker
    signers: dict[str, Signer] = {d: Ed25519Signer.generate() for d in passwords}
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        fill(outbox, signers, 10)
    mqtt = MqttConfig(port=broker.port)
    with publishing(path, "park", list(signers), mqtt, passwords), Outbox(path) as outbox:
        wait_until(lambda: outbox.status().queued == 0, 20, "the outbox to drain")


def test_a_refused_login_or_topic_keeps_the_envelopes(secured_broker: tuple[Mosquitto, dict[str, str]],
                                                      tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    broker, passwords = secured_broker
    signers: dict[str, Signer] = {d: Ed25519Signer.generate() for d in passwords}
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        fill(outbox, signers, 5)
    caplog.set_level(logging.INFO, logger="edge_agent")
    mqtt = MqttConfig(port=broker.port, protocol="5", reconnect_min_s=0.2, reconnect_max_s=0.5)
    wrong = {"inv-1": "wrong-password", "inv-2": passwords["inv-2"]}
    # inv-2 logs in but publishes under a project the ACL does not grant it: MQTT 5 says so in the PUBACK.
    with publishing(path, "other-park", list(signers), mqtt, wrong):
        refusals = ("broker_refused_publish", "broker_refused_connection")
        wait_until(lambda: all(r in caplog.text for r in refusals), 10, "both refusals")
    with Outbox(path) as outbox:
        assert {d.device_id: d.queued for d in outbox.status().devices} == {"inv-1": 5, "inv-2": 5}
        assert all(parse_envelope(raw).payload.seq == seq for seq, raw in outbox.pending("inv-2", -1, 10))
    assert "wrong-password" not in caplog.text


def send_receipt(port: int, topic: str, payload: bytes) -> None:
    """Publish a receipt as ingest does (QoS 1, not retained)."""
    publish_once(port, topic, payload)


def kept_seqs(outbox: Outbox, device_id: str) -> list[int]:
    return [s for s, _ in outbox.pending(device_id, -1, 100)] + [
        s for s, _, _ in outbox.published_before(device_id, 100, 100)]


def test_receipts_delete_and_a_later_receipt_makes_an_earlier_loss_be_resent(
        mosquitto: Mosquitto, tmp_path: Path, project_id: str) -> None:
    signer = Ed25519Signer.generate()
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        fill(outbox, {"inv-1": signer}, 10)
    collector = Collector(mosquitto.port, up_topic(project_id, "inv-1"), "collector")
    receipts = receipt_topic(project_id, "inv-1")
    mqtt = MqttConfig(port=mosquitto.port, receipt_grace_s=0.3)
    with publishing(path, project_id, ["inv-1"], mqtt), Outbox(path) as outbox:
        wait_until(lambda: outbox.status().published == 10, 20, "every PUBACK")
        originals = collector.payloads()
        send_receipt(mosquitto.port, receipts, encode_receipt([(0, 3)]))
        wait_until(lambda: outbox.status().kept == 6, 10, "the receipt to delete 0-3")
        time.sleep(1.0)  # past the grace: 4-9 are unreceipted, but no later seq is receipted
        assert len(collector.payloads()) == 10 and kept_seqs(outbox, "inv-1") == list(range(4, 10))
        send_receipt(mosquitto.port, receipts, encode_receipt([(9, 9)]))  # ingest has 9: 4-8 were lost
        wait_until(lambda: len(collector.payloads()) == 15, 10, "4-8 to be published again")
        assert collector.payloads()[10:] == originals[4:9]  # the same bytes
        send_receipt(mosquitto.port, receipts, encode_receipt([(4, 8)]))
        wait_until(lambda: outbox.status().kept == 0, 10, "the outbox to empty")
        status = outbox.status().devices[0]
    collector.close()
    assert (status.receipted_seq, len(collector.payloads())) == (9, 15)


def test_a_malformed_receipt_is_ignored_with_a_warning(mosquitto: Mosquitto, tmp_path: Path, project_id: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        fill(outbox, {"inv-1": Ed25519Signer.generate()}, 5)
    caplog.set_level(logging.WARNING, logger="edge_agent")
    receipts = receipt_topic(project_id, "inv-1")
    with publishing(path, project_id, ["inv-1"], MqttConfig(port=mosquitto.port)), Outbox(path) as outbox:
        wait_until(lambda: outbox.status().published == 5, 20, "every PUBACK")
        for garbage in (b"\xff" * 10, b"[" * 40_000, b'{"v":1,"seqs":[[3,1]]}', b'{"v":1,"seqs":[[0,1],[1,4]]}'):
            send_receipt(mosquitto.port, receipts, garbage)
        wait_until(lambda: caplog.text.count("bad_receipt") == 4, 10, "four warnings")
        assert outbox.status().kept == 5
        send_receipt(mosquitto.port, receipts, encode_receipt([(0, 4)]))  # the loop still runs
        wait_until(lambda: outbox.status().kept == 0, 10, "the valid receipt to apply")

