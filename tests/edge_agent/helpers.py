"""Test doubles and checks shared by the edge agent's tests."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.sources import SourceError
from protocol import (
    GENESIS_PREV,
    Metric,
    Reading,
    envelope_hash,
    parse_envelope,
    verify_envelope,
    verify_parsed,
)


class CounterSource:
    """A revenue meter whose export register grows 250 Wh per read; reads listed in `fail_on` fail,
    and so does every read after `limit` good ones (the meter went away)."""

    def __init__(self, fail_on: Iterable[int] = (), limit: int | None = None) -> None:
        self.reads = 0
        self.good = 0
        self.fail_on = set(fail_on)
        self.limit = limit
        self.closed = False

    def read(self, now_ms: int) -> list[Reading]:
        self.reads += 1
        if self.reads in self.fail_on or self.good == self.limit:
            raise SourceError("simulated Modbus timeout")
        self.good += 1
        return [Reading(Metric.ENERGY_EXPORT_WH, now_ms, 250 * self.reads),
                Reading(Metric.ENERGY_IMPORT_WH, now_ms, 3 * self.reads),
                Reading(Metric.ACTIVE_POWER_W, now_ms, 90_000.5)]

    def close(self) -> None:
        self.closed = True


class Collector:
    """A persistent-session QoS 1 subscriber that keeps every message, duplicates included; it
    reconnects by itself, so it outlives a broker restart."""

    def __init__(self, port: int, topic: str, client_id: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [payload for _, payload in self.messages]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def check_chains(copies: Iterable[bytes], public_keys: Mapping[str, bytes],
                 next_seq: Mapping[str, int]) -> dict[str, list[int]]:
    """Check every copy of every envelope seen anywhere (received or still queued):

    - each verifies against its device's key;
    - no two different envelopes share a device and seq (duplicates are identical bytes);
    - every seq from 0 to next_seq - 1 is present, and each envelope's prev is the hash of the
      previous seq's envelope (genesis for seq 0).

    Returns the seqs per device in the order of their first appearance in `copies`.
    """
    by_seq: dict[str, dict[int, bytes]] = defaultdict(dict)
    order: dict[str, list[int]] = defaultdict(list)
    for raw in copies:
        parsed = parse_envelope(raw)
        envelope = verify_parsed(parsed, public_keys[parsed.payload.device_id])
        device, seq = envelope.device_id, envelope.seq
        known = by_seq[device].get(seq)
        if known is None:
            by_seq[device][seq] = raw
            order[device].append(seq)
        else:
            assert known == raw, f"{device} seq {seq}: two different envelopes (seq reused)"
    assert set(by_seq) == set(next_seq)
    for device, envelopes in by_seq.items():
        assert sorted(envelopes) == list(range(next_seq[device])), f"{device}: seqs missing"
        prev = GENESIS_PREV
        for seq in range(next_seq[device]):
            envelope = verify_envelope(envelopes[seq], public_keys[device])
            assert envelope.payload.prev == prev, f"{device} seq {seq}: hash chain broken"
            prev = envelope_hash(envelopes[seq])
    return dict(order)
