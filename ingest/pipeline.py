"""One batch of messages through the whole decision path: refresh the registry view when it changed,
screen (inline or in the pool), then the store's single transaction. No MQTT here: the worker adds
the transport, tests and benchmarks drive it directly."""

from __future__ import annotations

from collections.abc import Sequence

from ingest.decide import Message
from ingest.screening import Screener
from ingest.store import BatchResult, Store


class Ingestor:
    def __init__(self, store: Store, screener: Screener) -> None:
        self.store = store
        self.screener = screener

    def process(self, messages: Sequence[Message]) -> BatchResult:
        """Commit the batch (raises DatabaseUnavailable, and then nothing is committed)."""
        # One cheap read per batch keeps revocations effective for the very next batch.
        if self.store.registry_version() != self.screener.registry.version:
            self.screener.set_registry(self.store.load_registry())
        return self.store.commit(messages, self.screener.screen(messages))

    def close(self) -> None:
        self.screener.close()
        self.store.close()
