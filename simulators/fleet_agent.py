"""A fleet behind the real edge agent: one `EdgeAgent` reading every fleet device.

Each device's source is the fleet's `SimulatedSource`, its key is `device_signer(fleet seed,
device id)` (so ingest can enroll `public_keys(fleet)` without touching the gateway), and the
agent's clock is an accelerated `SimulatedClock` starting at the fleet's start time.

`sample_fleet` drives `EdgeAgent.sample_once` tick by tick without publishing (backlogs for the
outbox and publisher tests; no broker needed); `run_fleet_agent` runs the agent for real, sampling
and publishing to the configured broker, for a number of simulated hours. The agent has no uplink
switch, so `gateway_offline` faults only act in `Fleet.run`; meter faults act in both.
"""

from __future__ import annotations

import threading

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import Clock, SimulatedClock
from edge_agent.config import AgentSettings
from protocol.keys import PublicKeyRecord
from simulators.fleet import Fleet
from simulators.signing import device_signer


def fleet_agent(fleet: Fleet, settings: AgentSettings, *, project_id: str,
                clock: Clock | None = None) -> EdgeAgent:
    """An edge agent reading every device of `fleet` (use it as a context manager)."""
    sources = fleet.sources()
    seed = fleet.config.seed
    devices = [Device(d.device_id, project_id, sources[d.device_id], device_signer(seed, d.device_id))
               for d in fleet.devices]
    return EdgeAgent(settings, devices, clock or SimulatedClock(settings.clock_speed, fleet.config.start_ms))


def public_keys(fleet: Fleet) -> list[PublicKeyRecord]:
    """What ingest must enroll to accept the fleet's envelopes."""
    return [PublicKeyRecord(d.device_id, device_signer(fleet.config.seed, d.device_id).public_key)
            for d in fleet.devices]


def sample_fleet(agent: EdgeAgent, fleet: Fleet, hours: float) -> int:
    """Sample every `fleet.config.interval_s` of simulated time for `hours` from the fleet's start,
    persisting envelopes in the agent's outbox without publishing; returns the envelopes appended."""
    interval_ms = fleet.config.interval_s * 1000
    end_ms = fleet.config.start_ms + round(hours * 3_600_000)
    return sum(len(agent.sample_once(now_ms).appended)
               for now_ms in range(fleet.config.start_ms, end_ms + 1, interval_ms))


def run_fleet_agent(fleet: Fleet, settings: AgentSettings, *, project_id: str, hours: float) -> None:
    """Run the agent (sampling every `settings.interval_s`, publishing to `settings.mqtt`) for
    `hours` of simulated time at `settings.clock_speed` × real time."""
    with fleet_agent(fleet, settings, project_id=project_id) as agent:
        timer = threading.Timer(hours * 3600 / settings.clock_speed, agent.stop)
        timer.start()
        try:
            agent.run()
        finally:
            timer.cancel()
