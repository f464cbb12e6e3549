"""Publishing: one MQTT connection per device, all of them driven by one thread.

`Publisher` is one device's session: paho-mqtt 2, QoS 1, a persistent session under a stable client
id (the device id), the device's own credentials (the broker's ACL lets it publish only under its own
id), optional TLS, a retained birth message on `.../state` and a retained last will `offline`, and
reconnects with jittered exponential backoff.

`PublishLoop` runs every publisher from a single thread with `select`: it fills each device's
`DeliveryWindow` from the outbox in seq order, publishes, marks acknowledged envelopes published and
deletes those ingest's receipts (`.../receipt`, subscribed in the same session) confirm, in batches,
and re-publishes by the resend rule (`delivery.ResendSchedule`). The sampler only appends to the
outbox, so it never waits for the network.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import importlib.metadata
import json
import logging
import random
import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.clock import Clock
from edge_agent.config import MqttConfig
from edge_agent.delivery import DEFAULT_RECEIPT_GRACE_S, Backoff, DeliveryWindow, ResendSchedule
from edge_agent.errors import OutboxError
from edge_agent.outbox import Alarm, Outbox
from mrv_common.logs import log_event
from protocol.topics import BadReceipt, SeqSpan, parse_receipt, receipt_topic, state_message, state_topic, up_topic

log = logging.getLogger(__name__)

MIN_WINDOW = 10
ACK_BATCH = 2000  # PUBACKs and receipted ranges are written once this many are pending ...
ACK_DELAY_S = 0.1  # ... or after this long, whichever comes first
TICK_S = 0.5  # keepalive checks (ping, dead-link detection) this often; also the longest idle wait
CLOSE_TIMEOUT_S = 2.0


def _agent_version() -> str:
    try:
        return importlib.metadata.version("mrv-ledger")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


AGENT_VERSION = _agent_version()


def window_size(mqtt_config: MqttConfig, devices: int) -> int:
    """Each device's share of the gateway's in-flight budget."""
    return max(MIN_WINDOW, mqtt_config.max_inflight // max(devices, 1))


class Link(enum.Enum):
    """Connection states of a Publisher."""

    DISCONNECTED = "disconnected"  # waiting for the next attempt (backoff)
    CONNECTING = "connecting"  # CONNECT sent, waiting for CONNACK
    CONNECTED = "connected"
    CLOSED = "closed"  # shut down; never reconnects


class Publisher:
    """One device's MQTT session. Not thread-safe: one `PublishLoop` thread drives it."""

    def __init__(self, device_id: str, project_id: str, config: MqttConfig, *, password: str | None,
                 window: int, clock: Clock, rng: random.Random | None = None) -> None:
        self.device_id = device_id
        self.topic = up_topic(project_id, device_id)
        self.state_topic = state_topic(project_id, device_id)
        self.receipt_topic = receipt_topic(project_id, device_id)
        self.receipts: list[SeqSpan] = []  # received from ingest, not yet applied to the outbox
        self.window = DeliveryWindow(window)
        self.link = Link.DISCONNECTED
        self._config = config
        self._clock = clock
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, rng)
        self._retry_at = 0.0
        self._alarms: tuple[Alarm, ...] = ()
        v5 = config.protocol == "5"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device_id, clean_session=None if v5 else False,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False)
        self._client.username_pw_set(device_id, password)
        # The DeliveryWindow bounds what is in flight. paho's own limit stays off (0): with one set,
        # paho scans every in-flight message on each PUBACK, O(window²) per window (measured: a
        # third of the publisher's time at a window of 1000).
        self._client.max_inflight_messages_set(0)
        self._client.connect_timeout = config.connect_timeout_s
        if config.tls:
            self._client.tls_set(ca_certs=_str(config.ca_file), certfile=_str(config.cert_file),
                                 keyfile=_str(config.key_file))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_receipt
        self._client.on_socket_open = _no_delay

    # -- driven by the loop ---------------------------------------------------------------------

    def poll_connect(self, now: float) -> None:
        """Start a connection attempt if disconnected and the backoff delay has passed."""
        if self.link is not Link.DISCONNECTED or now < self._retry_at:
            return
        self.link = Link.CONNECTING
        self._client.will_set(self.state_topic, self._state_payload("offline"), qos=1, retain=True)
        try:
            if self._config.protocol == "5":
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints
                properties.SessionExpiryInterval = self._config.session_expiry_s
                rc = self._client.connect(self._config.host, self._config.port, self._config.keepalive_s,
                                          clean_start=False, properties=properties)
            else:
                rc = self._client.connect(self._config.host, self._config.port, self._config.keepalive_s)
        except OSError as e:  # refused, unreachable, DNS, TLS handshake (ssl.SSLError)
            self._lost(f"connect failed: {e}")
            return
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(f"connect failed: {mqtt.error_string(rc)}")

    def socket(self) -> socket.socket | None:
        sock = self._client.socket()
        return sock if isinstance(sock, socket.socket) else None

    def want_write(self) -> bool:
        return self._client.want_write()

    def on_readable(self) -> None:
        self._client.loop_read()

    def on_writable(self) -> None:
        self._client.loop_write()

    def tick(self) -> None:
        """Keepalive: ping the broker, and drop a connection that stopped answering."""
        self._client.loop_misc()

    def publish_queued(self) -> None:
        """Publish the window's queued envelopes in seq order (when connected)."""
        if self.link is not Link.CONNECTED:
            return
        for entry in self.window.to_send():
            info = self._client.publish(self.topic, entry.envelope, qos=1)
            # paho keeps a QoS 1 message even when the write failed; a lost connection resets both.
            self.window.published(entry, info.mid)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break

    def set_alarms(self, alarms: Iterable[Alarm]) -> None:
        """Update the alarms carried by the retained state message (republished when they change)."""
        alarms = tuple(alarms)
        if alarms != self._alarms:
            self._alarms = alarms
            if self.link is Link.CONNECTED:
                self._publish_state("online")

    def close(self) -> None:
        """Say `offline` (a clean disconnect does not fire the will), disconnect, never reconnect."""
        if self.link is Link.CONNECTED:
            self._publish_state("offline")
        self.link = Link.CLOSED
        self._client.disconnect()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while (sock := self.socket()) is not None and self.want_write() and time.monotonic() < deadline:
            select.select([], [sock], [], 0.1)
            self._client.loop_write()

    @property
    def retry_at(self) -> float:
        return self._retry_at

    # -- paho callbacks (run inside loop_read / loop_write / loop_misc) --------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            # paho closes the socket next and calls _on_disconnect, which schedules the retry.
            log_event(log, logging.ERROR, "broker_refused_connection", device_id=self.device_id,
                      reason=str(reason))
            return
        self.link = Link.CONNECTED
        self._backoff.reset()
        self._client.subscribe(self.receipt_topic, qos=1)  # again each time: cheap, and sure
        log_event(log, logging.INFO, "connected", device_id=self.device_id,
                  session_present=flags.session_present, resend=len(self.window))
        self._publish_state("online")

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        self._lost(str(reason))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            # MQTT 5 only: the broker refused the message (e.g. its ACL). Keep it queued, reconnect
            # later and try again; the operator sees the error.
            log_event(log, logging.ERROR, "broker_refused_publish", device_id=self.device_id,
                      reason=str(reason), topic=self.topic)
            self._client.disconnect()
            return
        self.window.acknowledged(mid)

    def _on_receipt(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.receipts += parse_receipt(bytes(message.payload))
        except BadReceipt as e:  # ignored: the envelopes stay, and a later receipt can name them
            log_event(log, logging.WARNING, "bad_receipt", device_id=self.device_id, error=str(e))

    # -- internals ------------------------------------------------------------------------------

    def _lost(self, reason: str) -> None:
        if self.link in (Link.DISCONNECTED, Link.CLOSED):
            return
        was_connected = self.link is Link.CONNECTED
        self.link = Link.DISCONNECTED
        self.window.connection_lost()
        # Re-sending is ours, from the window in seq order; paho's copies would duplicate it.
        self._client.drop_out_messages()
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        # The first failure of a series is a warning; the retries that follow are routine.
        log_event(log, logging.WARNING if was_connected or self._backoff.attempt == 1 else logging.INFO,
                  "disconnected" if was_connected else "connect_failed", device_id=self.device_id,
                  reason=reason, retry_in_s=round(delay, 2), attempt=self._backoff.attempt,
                  unacked=len(self.window))

    def _state_payload(self, status: str) -> bytes:
        message = json.loads(state_message(status, agent_version=AGENT_VERSION, time_ms=self._clock.now_ms()))
        message["alarms"] = [alarm.to_json() for alarm in self._alarms]
        return json.dumps(message, sort_keys=True, separators=(",", ":")).encode()

    def _publish_state(self, status: str) -> None:
        self._client.publish(self.state_topic, self._state_payload(status), qos=1, retain=True)


def _wall_ms() -> int:
    """Wall-clock Unix ms: the resend rule's grace is real time, whatever the agent's clock says."""
    return time.time_ns() // 1_000_000


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    # paho leaves Nagle's algorithm on: small QoS 1 packets then wait for delayed TCP ACKs.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


class PublishLoop:
    """Drives `publishers` from the calling thread until `stop` is set (see `run`)."""

    def __init__(self, publishers: Sequence[Publisher], outbox_path: Path, clock: Clock, *,
                 receipt_grace_s: float = DEFAULT_RECEIPT_GRACE_S) -> None:
        self._publishers = list(publishers)
        self._by_device = {p.device_id: p for p in self._publishers}
        self._outbox_path = outbox_path
        self._clock = clock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._new_data = True
        self._alarms_changed: set[str] = {p.device_id for p in self._publishers}
        self._drained: set[str] = set()  # devices whose last outbox read came back short
        self._acks: dict[str, list[int]] = collections.defaultdict(list)
        self._receipts: dict[str, list[SeqSpan]] = collections.defaultdict(list)
        self._resends = ResendSchedule(round(receipt_grace_s * 1000))
        self._acks_since = 0.0
        self._next_tick = 0.0

    @property
    def publishers(self) -> tuple[Publisher, ...]:
        return tuple(self._publishers)

    def wake(self, alarms_changed: Iterable[str] = ()) -> None:
        """Tell the loop that envelopes were appended (thread-safe; never blocks)."""
        with self._lock:
            self._new_data = True
            self._alarms_changed.update(alarms_changed)
        # A full buffer means wake-ups are pending already; a closed socket, that the loop ended.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def run(self, stop: threading.Event) -> None:
        """Publish until `stop` is set, then flush acknowledgements and say offline."""
        outbox = Outbox(self._outbox_path)
        try:
            self._resends.highest.update(outbox.receipted_seqs())
            while not stop.is_set():
                now = time.monotonic()
                for publisher in self._publishers:
                    publisher.poll_connect(now)
                if now >= self._next_tick:
                    self._next_tick = now + TICK_S
                    for publisher in self._publishers:
                        publisher.tick()
                    self._resend(outbox)
                self._collect_acks()  # first: acknowledged entries free the room _refresh fills
                self._refresh(outbox)
                self._flush(outbox, now, force=False)
                self._wait(now)
        finally:
            self._collect_acks()
            self._flush(outbox, time.monotonic(), force=True)
            for publisher in self._publishers:
                publisher.close()
            outbox.close()
            self._wake_r.close()
            self._wake_w.close()

    def _refresh(self, outbox: Outbox) -> None:
        with self._lock:
            new_data, self._new_data = self._new_data, False
            alarms_changed, self._alarms_changed = self._alarms_changed, set()
        if new_data:
            self._drained.clear()
        try:
            for device_id in alarms_changed:
                self._by_device[device_id].set_alarms(outbox.alarms(device_id))
            for publisher in self._publishers:
                window = publisher.window
                wanted = window.room and publisher.device_id not in self._drained
                if publisher.link is Link.CONNECTED and wanted:
                    rows = outbox.pending(publisher.device_id, window.read_after, window.room)
                    if len(rows) < window.room:
                        self._drained.add(publisher.device_id)
                    window.load(rows)
                publisher.publish_queued()
        except OutboxError as e:
            log_event(log, logging.ERROR, "outbox_read_failed", error=str(e))
            with self._lock:  # retry next round (set_alarms ignores alarms it already published)
                self._new_data = True
                self._alarms_changed |= alarms_changed

    def _collect_acks(self) -> None:
        for publisher in self._publishers:
            acked = publisher.window.take_acked()
            if (acked or publisher.receipts) and not (self._acks or self._receipts):
                self._acks_since = time.monotonic()
            if acked:
                self._acks[publisher.device_id] += acked
            if publisher.receipts:
                self._receipts[publisher.device_id] += publisher.receipts
                publisher.receipts = []

    def _flush(self, outbox: Outbox, now: float, *, force: bool) -> None:
        pending = sum(map(len, self._acks.values())) + sum(map(len, self._receipts.values()))
        if not pending or not (force or pending >= ACK_BATCH or now - self._acks_since >= ACK_DELAY_S):
            return
        wall_ms = _wall_ms()
        try:
            if self._acks:
                outbox.mark_published(self._acks, wall_ms)
                self._acks.clear()
            if self._receipts:
                outbox.delete_receipted(self._receipts, self._clock.now_ms())
        except OutboxError as e:
            # Kept for the next flush; at worst they are re-sent after a restart (same bytes).
            log_event(log, logging.ERROR, "outbox_write_failed", error=str(e), pending=pending)
            return
        for device_id, spans in self._receipts.items():
            self._resends.receipted(device_id, max(last for _, last in spans), wall_ms)
            log_event(log, logging.DEBUG, "receipted", device_id=device_id, seq=spans[-1][1], ranges=len(spans))
        self._receipts.clear()

    def _resend(self, outbox: Outbox) -> None:
        """Publish again what the broker acknowledged and then lost, as later receipts prove."""
        now_ms = _wall_ms()
        for device_id, below in self._resends.due(now_ms):
            publisher = self._by_device[device_id]
            room = publisher.window.room
            if room <= 0 or publisher.link is not Link.CONNECTED:
                continue
            try:
                rows = outbox.published_before(device_id, below, room)
            except OutboxError as e:
                log_event(log, logging.ERROR, "outbox_read_failed", error=str(e))
                return
            on_the_way = {seq for seq, _, _ in rows if publisher.window.state(seq) is not None}
            lost = self._resends.select(device_id, rows, now_ms, more=len(rows) == room,
                                        skip=on_the_way.union(self._acks.get(device_id, ())))
            if lost:
                added = publisher.window.resend(lost)
                log_event(log, logging.WARNING, "resending", device_id=device_id, count=added,
                          first_seq=lost[0][0], last_seq=lost[-1][0],
                          why="acknowledged by the broker, not receipted, while a later seq was")
                publisher.publish_queued()

    def _wait(self, now: float) -> None:
        timeout = TICK_S
        if self._acks or self._receipts:
            timeout = min(timeout, max(0.0, self._acks_since + ACK_DELAY_S - now))
        for publisher in self._publishers:
            if publisher.link is Link.DISCONNECTED:
                timeout = min(timeout, max(0.0, publisher.retry_at - now))
        # poll, not select: select cannot watch descriptors numbered 1024 or more (about 1,000 devices).
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        readers: dict[int, tuple[socket.socket, Publisher]] = {}
        for publisher in self._publishers:
            sock = publisher.socket()
            if sock is not None:
                readers[sock.fileno()] = (sock, publisher)
                poller.register(sock, select.POLLIN | (select.POLLOUT if publisher.want_write() else 0))
        events = poller.poll(timeout * 1000)
        for fd, mask in events:  # reads first, then writes, as before
            if fd == self._wake_r.fileno():
                self._drain_wakeups()
            elif mask & ~select.POLLOUT and readers[fd][1].socket() is readers[fd][0]:
                readers[fd][1].on_readable()
        for fd, mask in events:
            if fd in readers and mask & select.POLLOUT and readers[fd][1].socket() is readers[fd][0]:
                readers[fd][1].on_writable()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
