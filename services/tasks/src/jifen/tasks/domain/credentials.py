"""Community apps' credentials, the rules free of storage and HTTP: the secret and its hash,
and the attempt limit on exchanging one for a token (see ``api/routes/credentials.py``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import deque

PREFIX = "jfa_"
TOKEN_TTL_SECONDS = 15 * 60
EXCHANGE_MAX_FAILURES = 10
EXCHANGE_WINDOW_SECONDS = 300.0


def new_secret() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class FailureLog:
    """Failures per key within a sliding window, in process; pure (the clock is passed in)."""

    def __init__(self, *, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        d = self._failures.get(key)
        if d is None:
            return None
        while d and d[0] <= now - self.window:
            d.popleft()
        if not d:
            del self._failures[key]
            return None
        return d

    def wait(self, key: str, now: float) -> float:
        """0.0 if ``key`` may try now, else seconds until its oldest counted failure expires."""
        d = self._recent(key, now)
        if d is None or len(d) < self.limit:
            return 0.0
        return d[len(d) - self.limit] + self.window - now

    def fail(self, key: str, now: float) -> None:
        if key not in self._failures and len(self._failures) >= self._max_keys:
            for k in list(self._failures):
                self._recent(k, now)
            if len(self._failures) >= self._max_keys:  # still full: forget the oldest half
                for k in list(self._failures)[: len(self._failures) // 2]:
                    del self._failures[k]
        self._failures.setdefault(key, deque()).append(now)
