"""What every fault scenario reports: attempts, lost, duplicated, wrongly accepted, and the checks
beyond those counts that failed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultResult:
    id: str  # R1 … R10, or a variant such as R2-crash
    fault: str
    attempts: int = 0  # faults injected, or inputs tried (R6, R7), or tampers (R8)
    lost: int = 0
    duplicated: int = 0
    wrongly_accepted: int = 0
    failed_checks: list[str] = field(default_factory=list)  # anything else the target asks, that failed
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (self.attempts > 0 and self.lost == self.duplicated == self.wrongly_accepted == 0
                and not self.failed_checks)

    def check(self, ok: bool, what: str) -> bool:
        """Record `what` as a failed check unless `ok`; returns `ok`."""
        if not ok:
            self.failed_checks.append(what)
        return ok

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"{self.id:<9} {self.fault[:58]:<58} {self.attempts:>8} {self.lost:>6} {self.duplicated:>6} "
                f"{self.wrongly_accepted:>7}  {verdict}  {self.seconds:7.1f} s")
        return text + "".join(f"\n          failed: {c}" for c in self.failed_checks)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "fault": self.fault, "attempts": self.attempts, "lost": self.lost,
                "duplicated": self.duplicated, "wrongly_accepted": self.wrongly_accepted,
                "passed": self.passed, "failed_checks": self.failed_checks, "seconds": round(self.seconds, 2),
                "details": self.details}


HEADER = (f"{'id':<9} {'fault':<58} {'attempts':>8} {'lost':>6} {'dup':>6} {'wrongly':>7}  {'':4}  {'time':>9}")


@contextmanager
def timed(result: FaultResult) -> Iterator[FaultResult]:
    start = time.monotonic()
    try:
        yield result
    finally:
        result.seconds = time.monotonic() - start


def settle(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Wait up to `timeout` s for `predicate`; returns whether it came true (a scenario then reports
    what is missing instead of stopping at the first timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def settle_count(read: Callable[[], int], target: int, timeout: float, quiet_s: float = 3.0) -> int:
    """Wait until `read()` reaches `target`, or stops moving for `quiet_s`, or `timeout`; returns it."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while last < target and time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last
