"""Rate limits per API key: a token bucket each, in this server process."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """``rate`` requests a second per key, bursts up to ``burst``. Kept in memory per worker
    process (a check must cost nothing at a thousand requests a second): with N workers a key
    may send up to N times the rate, which the limits table in docs/push.md says."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key_id: int) -> float:
        """0 if the key may send now (a token is taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate
