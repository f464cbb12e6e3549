"""Failed-login throttle: after too many failed logins in a sliding window, a user name or a client address
is refused without its password being checked (no argon2 work for a guesser) until the oldest of those
failures leaves the window.

In-process: the console is one process, so the counts live in its memory and start afresh when it restarts.
Memory is bounded: each kind of key (user names, addresses) keeps at most `max_keys` keys, dropping the one
that failed least recently, and at most `limit` timestamps per key. Pure: time comes from `clock`
(monotonic seconds), so tests move it instead of sleeping.

The check and the recording of a failure are separate steps, so logins already being checked when a key
reaches its limit still get their answer: a guesser sending logins in parallel gets at most as many extra
guesses per window as the server handles requests at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Lockout", "LoginThrottle", "minutes"]

MAX_KEYS = 10_000  # per kind of key: a few MB at most


class _FailureWindow:
    """The recent failures (timestamps) of each key of one kind, at most `limit` per key."""

    def __init__(self, limit: int, window_s: float, max_keys: int) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # least recently failed first

    def _recent(self, key: str, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def wait_s(self, key: str, now: float) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window_s - now

    def add(self, key: str, now: float) -> bool:
        """Note a failure of `key`; True when it has just reached the limit (a new lockout)."""
        failures = self._recent(key, now)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
            if len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        locked_already = len(failures) == self.limit  # by a failure of a login checked at the same time
        failures.append(now)
        return not locked_already and len(failures) == self.limit

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


@dataclass(frozen=True)
class Lockout:
    """What a failure locked out (each at most once per lockout), for the log."""
    user: bool
    address: bool


class LoginThrottle:
    """Failed logins per user name (as the login looks it up) and per client address."""

    def __init__(self, per_user: int, per_address: int, window_s: float, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._users = _FailureWindow(per_user, window_s, max_keys)
        self._addresses = _FailureWindow(per_address, window_s, max_keys)
        self._clock = clock
        self._lock = threading.Lock()  # login handlers run in a thread pool

    def wait_s(self, user: str, address: str) -> float:
        """Seconds until a login of `user` from `address` may be tried; 0 when it may now."""
        with self._lock:
            now = self._clock()
            return max(self._users.wait_s(user, now), self._addresses.wait_s(address, now))

    def failed(self, user: str, address: str) -> Lockout:
        with self._lock:
            now = self._clock()
            return Lockout(user=self._users.add(user, now), address=self._addresses.add(address, now))

    def succeeded(self, user: str) -> None:
        """The user proved their password: forget their failures (the address keeps its count)."""
        with self._lock:
            self._users.clear(user)

    def tracked(self) -> tuple[int, int]:
        """How many user names and addresses are held (those with failures in the window, and perhaps some
        whose failures have expired but have not been looked at since)."""
        with self._lock:
            return len(self._users), len(self._addresses)


def minutes(wait_s: float) -> int:
    """A wait as whole minutes for people, rounded up (at least 1)."""
    return max(1, math.ceil(wait_s / 60))
