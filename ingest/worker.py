"""The ingest worker: MQTT in, one transaction per batch, acknowledgements only after the commit.

paho-mqtt 2 with `manual_ack=True`, MQTT 5, a persistent session under a fixed client id
(clean_start False, a session expiry) and the shared subscription, so N workers run side by side and
a restarted worker gets back whatever it had not acknowledged. The network thread only queues
messages; the main thread cuts batches (size or time), runs them through `Ingestor`, publishes each
device's delivery receipt (`ingest.receipts`) and acks each message of a committed batch. Bad input
is quarantined and acked like good input, so it never blocks the stream. While the database is down
nothing is acked: the batch is retried by itself with jittered backoff and the broker holds the rest
(at most Receive Maximum messages in flight to us). A thread keeps the packed rollups that reports read
current (`ingest.rollups`).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import IngestConfig
from ingest.decide import Accept, Message
from ingest.errors import DatabaseUnavailable
from ingest.health import HealthServer
from ingest.metrics import IngestMetrics
from ingest.pipeline import Ingestor
from ingest.receipts import batch_receipts
from ingest.rollups import RollupKeeper
from ingest.screening import Screener, default_processes
from ingest.store import BatchResult, Store
from mrv_common.logs import log_event
from protocol.topics import SHARED_UP_SUBSCRIPTION

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0  # partitions ahead of time
_POLL_S = 0.2  # how often an idle worker looks at its stop flag


class _Delivery(NamedTuple):  # a tuple: one is made per message on the network thread
    message: Message
    mid: int
    qos: int
    generation: int  # the connection it came on: acks go only to that connection


class _ReadAheadClient(mqtt.Client):
    """paho-mqtt reads each packet with three or four recv() calls (the command byte, each byte of the
    remaining length, then the body), each after a select() of its own loop. This client reads up to
    64 KiB per recv() and handles every packet it already holds before paho's loop selects again.
    It overrides paho 2's private `_sock_recv` (paho is pinned in pyproject.toml). On the receive
    path alone (a backlog of 20,000 messages, with the queue and delivery tuples below) this halved
    the CPU per message: 70 µs before, 35 after, on the 2-core build machine."""

    READ_SIZE = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ahead = b""  # bytes read from `_ahead_sock` and not yet handed to paho, from `_ahead_at`
        self._ahead_at = 0
        self._ahead_sock: object = None

    def _buffered(self) -> bool:
        return self._ahead_sock is self._sock and self._ahead_at < len(self._ahead)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._ahead_sock is not self._sock:  # a new connection: nothing read ahead belongs to it
            self._ahead, self._ahead_at, self._ahead_sock = b"", 0, self._sock
        if self._ahead_at >= len(self._ahead):
            data = super()._sock_recv(max(bufsize, self.READ_SIZE))  # raises BlockingIOError when empty
            self._ahead, self._ahead_at = data, 0
            if not data:
                return data  # the broker closed the connection
        chunk = self._ahead[self._ahead_at:self._ahead_at + bufsize]
        self._ahead_at += len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc is MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered():
            rc = super().loop_read(max_packets)
        return rc


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential backoff with jitter (half to all of the step), capped at `high`."""
    return min(high, low * 2.0 ** min(attempt, 30)) * rng.uniform(0.5, 1.0)


class IngestWorker:
    """`run()` blocks until `stop()`; safe to call `stop()` from a signal handler or another thread."""

    def __init__(self, config: IngestConfig, clock_ms: Callable[[], int] | None = None) -> None:
        """`clock_ms`: the arrival clock (Unix ms), the system's by default; a test in simulated time
        passes the simulation's, so that arrival and device times share one clock."""
        self.config = config
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._queue: queue.SimpleQueue[_Delivery] = queue.SimpleQueue()
        self.metrics = IngestMetrics(queue_depth=self._queue.qsize)
        self._stop = threading.Event()
        self._generation = 0
        self._rng = random.Random()
        self._client = self._make_client()

    def stop(self) -> None:
        self._stop.set()

    # -- MQTT (callbacks run on paho's network thread) ------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.config.broker
        client = _ReadAheadClient(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password())
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, _properties: Properties | None) -> None:
        if reason.is_failure:
            log_event(log, logging.ERROR, "broker_refused", reason=str(reason))
            return
        self._generation += 1
        client.subscribe(SHARED_UP_SUBSCRIPTION, qos=1)
        self.metrics.set_broker_connected(True)
        log_event(log, logging.INFO, "broker_connected", client_id=self.config.broker.client_id,
                  session_present=flags.session_present)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, _properties: Properties | None) -> None:
        self.metrics.set_broker_connected(False)
        level = logging.INFO if self._stop.is_set() else logging.WARNING
        log_event(log, level, "broker_disconnected", reason=str(reason))

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<topic is not UTF-8>"  # quarantined as bad_topic
        message = Message(topic, bytes(msg.payload), self._clock_ms())
        self._queue.put(_Delivery(message, msg.mid, msg.qos, self._generation))

    # -- the batch loop (main thread) -----------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        processes = default_processes() if cfg.verify.processes is None else cfg.verify.processes
        screener = Screener(cfg.checks.policy(), processes, cfg.verify.inline_below)
        store = Store(cfg.database.conninfo, months_back=cfg.partitions.months_back,
                      months_ahead=cfg.partitions.months_ahead, application_name=cfg.broker.client_id)
        ingestor = Ingestor(store, screener)
        http = HealthServer(self.metrics, cfg.http.host, cfg.http.port).start() if cfg.http.port else None
        rollups = (RollupKeeper(cfg.database.conninfo, cfg.rollups.interval_s, self.metrics,
                                f"{cfg.broker.client_id}-rollups").start() if cfg.rollups.interval_s else None)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints
        props.SessionExpiryInterval = cfg.broker.session_expiry_s
        props.ReceiveMaximum = cfg.broker.receive_maximum
        self._client.connect_async(cfg.broker.host, cfg.broker.port, cfg.broker.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        log_event(log, logging.INFO, "ingest_started", client_id=cfg.broker.client_id, processes=processes,
                  batch=cfg.batch.max_messages, http_port=http.port if http else None,
                  rollups_every_s=cfg.rollups.interval_s or None)
        next_maintenance = time.monotonic()  # at once: checks the schema, makes the partitions
        try:
            while not self._stop.is_set():
                batch = self._collect()
                if batch:
                    self._commit_and_ack(ingestor, batch)
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + MAINTENANCE_INTERVAL_S
                    try:
                        store.ensure_partition_window()
                        self.metrics.set_database_up()
                    except DatabaseUnavailable as e:
                        self.metrics.record_db_error()
                        log_event(log, logging.WARNING, "maintenance_skipped", error=str(e))
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            ingestor.close()
            if rollups is not None:
                rollups.close()
            if http is not None:
                http.close()
            log_event(log, logging.INFO, "ingest_stopped", client_id=cfg.broker.client_id)

    def _collect(self) -> list[_Delivery]:
        """Up to max_messages, waiting at most max_delay_ms after the first; stale deliveries dropped
        (the broker redelivers what an earlier connection did not acknowledge)."""
        try:
            batch = [self._queue.get(timeout=_POLL_S)]
        except queue.Empty:
            return []
        limit = self.config.batch.max_messages
        deadline = time.monotonic() + self.config.batch.max_delay_ms / 1000
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
        self.metrics.count_received(len(batch))  # per batch: a lock per message cost 2 % of the worker's CPU
        generation = self._generation
        return [d for d in batch if d.generation == generation]

    def _commit_and_ack(self, ingestor: Ingestor, batch: list[_Delivery]) -> None:
        started = time.monotonic()
        messages = [d.message for d in batch]
        result: BatchResult | None = None
        attempt = 0
        while result is None:
            try:
                result = ingestor.process(messages)
            except DatabaseUnavailable as e:
                self.metrics.record_db_error()
                delay = backoff_delay(attempt, self.config.batch.retry_min_s, self.config.batch.retry_max_s,
                                      self._rng)
                log_event(log, logging.WARNING if attempt == 0 else logging.DEBUG, "batch_retry",
                          error=str(e), attempt=attempt, delay_s=round(delay, 3), messages=len(batch))
                attempt += 1
                if self._stop.wait(delay):
                    return  # stopping: nothing acked, the broker redelivers to the next run
        # Receipts before acks: a crash in between leaves the batch to be redelivered and receipted then.
        for topic, receipt in batch_receipts(messages, result.decisions):
            self._client.publish(topic, receipt, qos=1)
        generation = self._generation
        for d in batch:
            if d.generation == generation:
                self._client.ack(d.mid, d.qos)
        now_ms = self._clock_ms()
        self.metrics.record_batch(stored=result.stored, readings=result.readings,
                                  duplicates=result.duplicates, quarantined=result.quarantined,
                                  chain_events=[e.kind for e in result.chain_events],
                                  seconds=time.monotonic() - started,
                                  lag_s=(now_ms - min(m.arrival_ms for m in messages)) / 1000)
        if attempt:
            log_event(log, logging.INFO, "batch_committed_after_retry", attempts=attempt + 1,
                      messages=len(batch))
        if log.isEnabledFor(logging.DEBUG):
            for decision in result.decisions:
                if isinstance(decision, Accept):
                    log_event(log, logging.DEBUG, "stored", device_id=decision.envelope.device_id,
                              seq=decision.envelope.seq, flags=decision.flags)
            log_event(log, logging.DEBUG, "batch_committed", messages=len(batch), stored=result.stored,
                      duplicates=result.duplicates, quarantined=len(result.quarantined))
