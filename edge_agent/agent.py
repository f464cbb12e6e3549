"""The edge agent: every interval, read each device's meters and persist one signed envelope per
device; meanwhile publish whatever the outbox holds and delete what ingest's receipts confirm.

`EdgeAgent.sample_once` reads all sources and appends their envelopes in one outbox transaction.
`run` repeats it on the agent's clock while a `PublishLoop` thread publishes from the outbox, until
`stop()` or SIGTERM/SIGINT. Sampling and publishing share nothing but the outbox file, so a broker
outage or a backlog being drained never delays a reading.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

from edge_agent.clock import Clock, make_clock
from edge_agent.config import AgentSettings, EdgeConfig
from edge_agent.errors import AgentAlreadyRunning, EdgeError, OutboxError
from edge_agent.keystore import FileKeyStore, read_secret
from edge_agent.outbox import AppendResult, Draft, Outbox
from edge_agent.publisher import Publisher, PublishLoop, window_size
from edge_agent.sources import MeterSource, SourceError, build_source
from mrv_common.logs import log_event
from protocol.keys import Signer

log = logging.getLogger(__name__)

LOCK_FILE = "agent.lock"
JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Device:
    """One device as the agent runs it."""

    device_id: str
    project_id: str
    source: MeterSource
    signer: Signer
    password: str | None = field(default=None, repr=False)  # broker password (username = device_id)


class EdgeAgent:
    """Sources + outbox + one publisher per device. Use as a context manager (or call `close`).

    The data directory is locked while the agent exists: a second agent on the same outbox would
    publish the same devices under the same client ids.
    """

    def __init__(self, settings: AgentSettings, devices: Sequence[Device],
                 clock: Clock | None = None) -> None:
        if not devices or len({d.device_id for d in devices}) != len(devices):
            raise ValueError("an agent needs at least one device, each device id once")
        self.settings = settings
        self.devices = tuple(devices)
        self.clock = clock or make_clock(settings.clock_speed)
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = _lock_data_dir(settings)
        try:
            self.outbox = Outbox(settings.outbox_path, max_bytes=settings.outbox.max_bytes,
                                 policy=settings.outbox.policy)
        except BaseException:
            self._lock.close()
            raise
        window = window_size(settings.mqtt, len(devices))
        self.publish_loop = PublishLoop(
            [Publisher(d.device_id, d.project_id, settings.mqtt, password=d.password, window=window,
                       clock=self.clock) for d in devices],
            settings.outbox_path, self.clock, receipt_grace_s=settings.mqtt.receipt_grace_s)
        self._stopping = False

    @classmethod
    def from_config(cls, config: EdgeConfig, clock: Clock | None = None) -> EdgeAgent:
        """Load each device's key and broker password, open its source, build the agent."""
        keys = FileKeyStore({d.device_id: d.key_file for d in config.devices})
        devices: list[Device] = []
        try:
            for d in config.devices:
                signer = keys.signer(d.device_id)
                password = (None if d.password_file is None
                            else read_secret(d.password_file, "password file").decode().strip())
                devices.append(Device(d.device_id, d.project_id, build_source(d.source), signer, password))
            return cls(config, devices, clock)
        except BaseException:
            for device in devices:
                device.source.close()
            raise

    def sample_once(self, now_ms: int) -> AppendResult:
        """Read every source at `now_ms` and persist one envelope per device, in one transaction.

        A device whose source fails is logged and skipped for this interval (its cumulative
        registers carry the energy into the next one). Raises OutboxError if nothing could be
        written (e.g. the disk is full).
        """
        drafts = []
        for device in self.devices:
            try:
                readings = device.source.read(now_ms)
            except SourceError as e:
                log_event(log, logging.WARNING, "source_failed", device_id=device.device_id, error=str(e))
                continue
            except Exception as e:  # a bug in one source must not stop the other devices
                log_event(log, logging.ERROR, "source_crashed", exc_info=True, device_id=device.device_id,
                          error=repr(e))
                continue
            drafts.append(Draft(device.device_id, now_ms, tuple(readings), device.signer))
        result = self.outbox.append(drafts, now_ms)
        self._report(result)
        self.publish_loop.wake(alarms_changed={r.device_id for r in result.evicted} | set(result.refused))
        return result

    def _report(self, result: AppendResult) -> None:
        for item in result.appended:
            log_event(log, logging.DEBUG, "appended", device_id=item.device_id, seq=item.seq, size=item.size)
        full = "disk" if result.disk_bound else "max_bytes"  # what bounded the outbox
        for r in result.evicted:
            log_event(log, logging.WARNING, "outbox_evicted", device_id=r.device_id, first_seq=r.first_seq,
                      last_seq=r.last_seq, count=r.count, policy="drop_oldest", full=full)
        for device_id in result.refused:
            log_event(log, logging.WARNING, "outbox_refused", device_id=device_id,
                      policy=self.outbox.policy.value, full=full)
        for bad in result.invalid:
            log_event(log, logging.ERROR, "invalid_readings", device_id=bad.device_id, reason=bad.reason)

    def run(self) -> None:
        """Sample every `interval_s` and publish until `stop()` (or SIGTERM/SIGINT when called from
        the main thread). Call it once per agent. Raises EdgeError if the publisher thread failed."""
        stop_publishing = threading.Event()
        failures: list[BaseException] = []

        def publish() -> None:
            try:
                self.publish_loop.run(stop_publishing)
            except BaseException as e:
                failures.append(e)
                log_event(log, logging.CRITICAL, "publisher_failed", exc_info=True, error=repr(e))

        publisher = threading.Thread(target=publish, name="mrv-edge-publish", daemon=True)
        restore_signals = self._handle_signals()
        publisher.start()
        log_event(log, logging.INFO, "started", devices=[d.device_id for d in self.devices],
                  interval_s=self.settings.interval_s, outbox=str(self.settings.outbox_path))
        try:
            self._sample_loop(publisher)
        finally:
            stop_publishing.set()
            self.publish_loop.wake()
            publisher.join(JOIN_TIMEOUT_S)
            restore_signals()
            status = self.outbox.status()
            log_event(log, logging.INFO, "stopped", queued=status.queued, published_unreceipted=status.published)
        if failures:
            raise EdgeError(f"the publisher stopped: {failures[0]!r}") from failures[0]

    def _sample_loop(self, publisher: threading.Thread) -> None:
        interval_ms = max(1, round(self.settings.interval_s * 1000))
        # Sleep in slices so that stop() takes effect within 1/20 of an interval (at most 1 s).
        nap_s = min(1.0, self.settings.interval_s / 20)
        due = (self.clock.now_ms() // interval_ms + 1) * interval_ms
        while not self._stopping and publisher.is_alive():
            now = self.clock.now_ms()
            if now < due:
                self.clock.sleep(min((due - now) / 1000, nap_s))
                continue
            try:
                self.sample_once(now)
            except OutboxError as e:
                log_event(log, logging.ERROR, "append_failed", error=str(e), devices=len(self.devices))
            missed = (now - due) // interval_ms
            if missed:
                log_event(log, logging.WARNING, "sampling_behind", missed_intervals=missed)
            due += (missed + 1) * interval_ms

    def stop(self) -> None:
        """Ask `run` to return; safe from any thread and from a signal handler (it only sets a flag)."""
        self._stopping = True

    def _handle_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.signal(sig, lambda signum, frame: self.stop())
                    for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def close(self) -> None:
        for device in self.devices:
            device.source.close()
        self.outbox.close()
        self._lock.close()

    def __enter__(self) -> EdgeAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock_data_dir(settings: AgentSettings) -> IO[str]:
    path = settings.data_dir / LOCK_FILE
    lock = path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise AgentAlreadyRunning(f"another agent (pid {holder}) is using {settings.data_dir}") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
