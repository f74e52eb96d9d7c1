"""Per-credential rate limits on write endpoints: a token bucket per caller, in process.

Each API process keeps its own buckets (no shared store), so with N replicas a caller can reach
N times the rate; the limit protects a process and the database behind it from one noisy app,
it is not a quota. Pure: the clock is passed in, so the rules are tested without waiting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """``rate`` requests a second sustained, up to ``burst`` at once, per key."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: str, *, rate: float, burst: int, now: float) -> float:
        """Spend one token of ``key``'s bucket; 0.0 if allowed, else seconds until one frees."""
        if rate <= 0 or burst <= 0:
            return 0.0  # no limit configured
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now, rate, burst)
            b = self._buckets[key] = _Bucket(tokens=float(burst), updated=now)
        b.tokens = min(float(burst), b.tokens + max(0.0, now - b.updated) * rate)
        b.updated = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / rate

    def _evict(self, now: float, rate: float, burst: int) -> None:
        # buckets that would be full again carry no state worth keeping
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= burst]
        for k in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[k]


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; never 0, which would invite an immediate retry."""
    return str(max(1, math.ceil(seconds)))
