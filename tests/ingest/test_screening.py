"""The process pool gives exactly the inline decisions, and follows registry changes."""

from __future__ import annotations

import dataclasses

from ingest.decide import KeyInfo, KeyStatus, Message, Policy, Quarantine, RegistryView
from ingest.screening import Screener
from protocol import Reason
from tests.ingest.helpers import Device, now_ms


def test_pool_and_inline_agree_and_the_pool_follows_the_registry() -> None:
    devices = [Device(f"meter-{i}", "plant-1") for i in range(4)]
    keys = {d.signer.kid: KeyInfo(d.signer.kid, d.device_id, d.signer.public_key, 0, None, KeyStatus.ACTIVE)
            for d in devices}
    registry = RegistryView(1, {d.device_id: "plant-1" for d in devices}, keys)
    messages = [Message(d.topic, d.next(), now_ms()) for _ in range(30) for d in devices]
    messages += [Message(devices[0].topic, b"\x00junk", now_ms()), Message("bad/topic", b"", now_ms())]
    inline = Screener(Policy(), 0, 0)
    pool = Screener(Policy(), 2, 0)
    try:
        for screener in (inline, pool):
            screener.set_registry(registry)
        assert pool.screen(messages) == inline.screen(messages)

        revoked = dataclasses.replace(keys[devices[1].signer.kid], status=KeyStatus.REVOKED)
        pool.set_registry(RegistryView(2, registry.device_projects, {**keys, revoked.kid: revoked}))
        results = pool.screen(messages)
        refused = [r for r, m in zip(results, messages, strict=True) if m.topic == devices[1].topic]
        assert all(isinstance(r, Quarantine) and r.reason is Reason.KEY_REVOKED for r in refused)
    finally:
        inline.close()
        pool.close()
