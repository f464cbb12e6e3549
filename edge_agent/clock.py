"""Where the agent's time comes from: the wall clock, or a simulated clock that runs faster.

Sources stamp readings with the agent's `now_ms`, never their own clock, so a fleet or a test with a
`SimulatedClock(speed=600)` produces ten minutes of data per second, consistently across threads.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Unix time in milliseconds (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class WallClock:
    """The system clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class SimulatedClock:
    """Time that starts at `start_ms` and runs `speed` times faster than real time."""

    def __init__(self, speed: float, start_ms: int | None = None) -> None:
        if not speed > 0:
            raise ValueError("the clock speed must be positive")
        self.speed = speed
        self._start_ms = WallClock().now_ms() if start_ms is None else start_ms
        self._origin = time.monotonic()  # monotonic: a wall-clock step must not move simulated time

    def now_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._origin) * self.speed * 1000)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)


def make_clock(speed: float) -> Clock:
    """The wall clock for speed 1, else a simulated clock starting now."""
    return WallClock() if speed == 1 else SimulatedClock(speed)
