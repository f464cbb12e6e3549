"""A simulated SunSpec device on Modbus TCP: a plant's registers served by pymodbus.

The server runs its asyncio loop in a background thread, so tests, fleets and the CLI use it from
plain synchronous code. Simulated time is pushed, not pulled: `update(t_ms)` recomputes the
register map (simulators.sunspec_image) for time `t_ms`, and every Modbus read until the next
update sees exactly those registers. A test can therefore freeze time and compare what a client
read with `registers` and `snapshot`, the values the simulator holds. During a `meter_outage`
fault every read is answered with Modbus exception 0x0B (gateway target failed to respond).

    with SunSpecServer(plant, port=0).start(t_ms) as server:
        host, port = server.address
        ...
        server.update(t_ms + 60_000)
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.faults import MeterUnavailable
from simulators.plant import PlantLike, PlantSnapshot
from simulators.sunspec_image import BASE_ADDRESS, MAP_SIZE, SunSpecImage

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class _Served:
    registers: tuple[int, ...]
    snapshot: PlantSnapshot | None  # None: the meter is in an outage


class SunSpecServer:
    """Serves `plant` as a SunSpec device (any Modbus unit id) on `host:port` (0: a free port)."""

    def __init__(self, plant: PlantLike, *, host: str = "127.0.0.1", port: int = 0, unit_id: int = 1,
                 serial: str | None = None) -> None:
        c = plant.config
        self.plant = plant
        self.image = SunSpecImage.for_plant(c.kind, c.capacity_w, serial=serial or f"SIM-{c.kind}-{c.seed}",
                                            initial_wh=max(c.initial_export_wh, c.initial_import_wh),
                                            unit_id=unit_id)
        self._host, self._port = host, port
        self._served: _Served | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on; the real port when constructed with port 0."""
        return self._host, self._port

    @property
    def registers(self) -> list[int]:
        """The register map now served, from BASE_ADDRESS (a copy; in an outage, the last map)."""
        return list(self._current().registers)

    @property
    def snapshot(self) -> PlantSnapshot | None:
        """The plant state now served; None during a meter outage."""
        return self._current().snapshot

    def update(self, t_ms: int) -> PlantSnapshot | None:
        """Serve the plant as it is at simulated time `t_ms`."""
        try:
            snap: PlantSnapshot | None = self.plant.snapshot(t_ms)
        except MeterUnavailable:
            snap = None
        previous = self._served.registers if self._served else ()
        registers = tuple(self.image.registers(snap)) if snap is not None else previous
        with self._lock:
            self._served = _Served(registers, snap)
        return snap

    def start(self, t_ms: int) -> SunSpecServer:
        """Compute the registers for `t_ms` and start listening; returns once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self.update(t_ms)
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(ready, errors), name="sunspec-server",
                                        daemon=True)
        self._thread.start()
        started = ready.wait(START_TIMEOUT_S)
        if errors:  # the loop has ended by itself: nothing to shut down
            self._thread.join(START_TIMEOUT_S)
            self._loop = self._server = self._thread = None
        elif not started:
            self.stop()
        if errors or not started:
            raise RuntimeError(f"the SunSpec server did not start on {self._host}:{self._port}: "
                               f"{errors[0] if errors else 'timeout'}")
        return self

    def stop(self) -> None:
        """Stop listening and join the thread; safe to call twice."""
        loop, server, thread = self._loop, self._server, self._thread
        if loop is not None and server is not None and loop.is_running():
            shutdown = server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
            asyncio.run_coroutine_threadsafe(shutdown, loop).result(START_TIMEOUT_S)
        if thread is not None:
            thread.join(START_TIMEOUT_S)
        self._loop = self._server = self._thread = None

    def __enter__(self) -> SunSpecServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _current(self) -> _Served:
        with self._lock:
            if self._served is None:
                raise RuntimeError("call update() or start() first")
            return self._served

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(ready))
        except BaseException as e:  # reported to start(), which raises it in the caller's thread
            errors.append(e)
            ready.set()
        finally:
            self._loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        registers = SimData(BASE_ADDRESS, count=MAP_SIZE, datatype=DataType.REGISTERS, readonly=True)
        device = SimDevice(id=0, simdata=[registers], action=self._on_request)  # id 0: any unit id
        self._server = ModbusTcpServer(device, address=(self._host, self._port))
        await self._server.serve_forever(background=True)
        self._port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        ready.set()
        await self._server.serving

    async def _on_request(self, function_code: int, start_address: int, address: int, count: int,
                          current: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        served = self._current()
        if served.snapshot is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        # pymodbus hands us its whole register block: fill the requested slice from the served map.
        first = address - start_address
        current[first:first + count] = served.registers[address - BASE_ADDRESS:address - BASE_ADDRESS + count]
        return None
