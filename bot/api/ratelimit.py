"""A token bucket per API token, in this process: a runaway Zap cannot starve the bot."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """`burst` requests at once, then `per_second` a second, per key."""

    def __init__(self, per_second: float, burst: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst, self.monotonic = per_second, burst, monotonic
        self._buckets: dict[object, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: object) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        now = self.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return max(1.0, math.ceil((1 - tokens) / self.per_second))
