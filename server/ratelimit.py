"""Token buckets kept in process memory, one per key (API key id, user id, address).

Bound: at most `max_keys` buckets; past it the least recently used bucket is forgotten
(that caller starts again with a full bucket). Limits are per server process.
"""

from __future__ import annotations

import collections
import math
import time

__all__ = ["TokenBuckets"]


class TokenBuckets:
    def __init__(self, rate_per_second: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: collections.OrderedDict[object, tuple[float, float]] = collections.OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: object, amount: float = 1.0) -> float:
        """Take `amount` tokens; returns 0 when allowed, else the seconds to wait before retrying."""
        if not self.enabled:
            return 0.0
        now = time.monotonic()
        tokens, stamp = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        amount = min(amount, self.burst)  # a request larger than the burst is allowed once the bucket is full
        if tokens >= amount:
            self._buckets[key] = (tokens - amount, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (amount - tokens) / self.rate
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
