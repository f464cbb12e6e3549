"""Sample signed envelopes on disk, for interop tests and for verifiers trying the format.

`export_envelopes(out_dir)` writes, per simulated device, its envelopes as raw COSE_Sign1 files
named DEVICE-SEQ.cose and its public key as DEVICE.pub.json (a protocol PublicKeyRecord), which
`mrv inspect FILE --pubkey DEVICE.pub.json` checks. Keys, readings and bytes depend only on the
arguments: the same seed writes identical files on every machine.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from pathlib import Path

from edge_agent.sources.simulated import SimulatedSource
from protocol.keys import PublicKeyRecord
from simulators.plant import PlantConfig, PlantKind
from simulators.processes import derive_seed
from simulators.signing import EnvelopeChain, device_signer

# Midsummer midnight UTC (morning in east Asia): a fixed default keeps the output reproducible.
DEFAULT_START_MS = calendar.timegm((2025, 6, 21, 0, 0, 0)) * 1000


@dataclass(frozen=True)
class ExportedDevice:
    device_id: str
    public_key_file: Path
    envelope_files: tuple[Path, ...]


def sample_device_id(kind: PlantKind, index: int) -> str:
    return f"sim-{kind}-{index:03d}"


def export_envelopes(out_dir: Path, *, devices: int = 3, envelopes: int = 10, seed: int = 0,
                     interval_s: int = 300, start_ms: int = DEFAULT_START_MS) -> list[ExportedDevice]:
    """Write `envelopes` chained envelopes for each of `devices` devices (alternately PV and wind),
    one every `interval_s` seconds of simulated time from `start_ms`."""
    if devices < 1 or envelopes < 1 or interval_s < 1:
        raise ValueError("devices, envelopes and interval_s must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = tuple(PlantKind)
    exported = []
    for index in range(devices):
        kind = kinds[index % len(kinds)]
        device_id = sample_device_id(kind, index)
        source = SimulatedSource(PlantConfig(kind, derive_seed(seed, device_id)), origin_ms=start_ms)
        signer = device_signer(seed, device_id)
        chain = EnvelopeChain(device_id, signer)
        files = []
        for k in range(envelopes):
            now_ms = start_ms + k * interval_s * 1000
            path = out_dir / f"{device_id}-{chain.next_seq}.cose"
            path.write_bytes(chain.sign(source.read(now_ms), now_ms))
            files.append(path)
        key_file = out_dir / f"{device_id}.pub.json"
        key_file.write_text(PublicKeyRecord(device_id, signer.public_key).to_json())
        exported.append(ExportedDevice(device_id, key_file, tuple(files)))
    return exported
