"""Simulated plants, meters, meter faults and envelope attacks, deterministic for a seed.

This package's core never imports the edge agent, because the agent's simulated source
(`edge_agent.sources.simulated`) is built on it. What is built on that source is imported from
its own module: `simulators.fleet` (Fleet), `simulators.samples` (export_envelopes),
`simulators.modbus_server` (SunSpecServer, needs pymodbus) and `simulators.fleet_agent` (a fleet
behind the real EdgeAgent).
"""

from simulators.attacks import AttackMessage, EnvelopeAttack, attack_messages
from simulators.faults import FaultInjector, FaultWindow, MeterFault, MeterUnavailable
from simulators.plant import Plant, PlantConfig, PlantKind, PlantLike, PlantSnapshot
from simulators.processes import derive_seed
from simulators.pv import PvArray
from simulators.signing import EnvelopeChain, device_signer
from simulators.weather import Climate
from simulators.wind import PowerCurve

__all__ = [
    "AttackMessage", "Climate", "EnvelopeAttack", "EnvelopeChain", "FaultInjector", "FaultWindow",
    "MeterFault", "MeterUnavailable", "Plant", "PlantConfig", "PlantKind", "PlantLike", "PlantSnapshot",
    "PowerCurve", "PvArray", "attack_messages", "derive_seed", "device_signer",
]
