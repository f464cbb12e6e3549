"""Seeded randomness for the simulators: derived seeds and a correlated Gaussian process.

Every simulator draws from its own `random.Random(seed)`, never from the global generator, so a
series depends only on its seed and the simulated time it was stepped to.
"""

from __future__ import annotations

import hashlib
import math
import random


def derive_seed(seed: int, *labels: object) -> int:
    """A child seed for one named part of a simulation (a device, its weather, its key).

    Stable across processes and Python versions (SHA-256, not `hash()`), so a fleet built from the
    same seed gives every device the same series and the same key every time.
    """
    text = ":".join([str(seed), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class GaussianAr1:
    """A stationary AR(1) process with standard-normal marginals, sampled every `step_s` seconds.

    x[k+1] = phi * x[k] + sqrt(1 - phi^2) * e[k] with phi = exp(-step_s / tau_s): neighbouring
    samples are correlated with time constant `tau_s`, and every sample is N(0, 1), so callers map
    it to any marginal distribution they need (clearness, Weibull wind speed, noise).
    """

    def __init__(self, rng: random.Random, *, step_s: float, tau_s: float) -> None:
        if step_s <= 0 or tau_s <= 0:
            raise ValueError("step_s and tau_s must be positive")
        self._rng = rng
        self._phi = math.exp(-step_s / tau_s)
        self._innovation = math.sqrt(1.0 - self._phi**2)
        self.value = rng.gauss(0.0, 1.0)  # start in the stationary distribution: no warm-up needed

    def step(self) -> float:
        self.value = self._phi * self.value + self._innovation * self._rng.gauss(0.0, 1.0)
        return self.value
