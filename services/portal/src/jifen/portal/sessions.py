"""Sessions: the browser holds only a random id in an HttpOnly, SameSite=Lax cookie; the
person's tokens stay in this process. Every session, signed in or not, has a CSRF token that
each form carries and each POST must return; signing in starts a new session (a new id), so an
id planted before sign-in is worth nothing after it.

Kept in memory: a restart of the portal signs everyone out (they sign in again with a new
code); a portal run as several replicas needs sticky sessions or a shared store."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "jifen_portal"
MAX_SESSIONS = 50_000


@dataclass
class RoleToken:
    role: str
    subject: str
    token: str
    until: float


@dataclass
class Session:
    id: str
    csrf: str
    seen: float
    name: str = ""
    roles: dict[str, RoleToken] = field(default_factory=dict)
    role: str | None = None
    # what a POST leaves for the page it redirects to (one read: ``take``)
    flash: dict[str, Any] = field(default_factory=dict)

    def take(self, key: str) -> Any:
        return self.flash.pop(key, None)

    @property
    def current(self) -> RoleToken | None:
        t = self.roles.get(self.role) if self.role else None
        return t if t is not None and t.until > time.time() else None

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent, self.csrf)


class Sessions:
    def __init__(self, idle_seconds: int) -> None:
        self.idle = idle_seconds
        self._by_id: dict[str, Session] = {}

    def get(self, sid: str | None) -> Session | None:
        s = self._by_id.get(sid) if sid else None
        now = time.monotonic()
        if s is None or now - s.seen > self.idle:
            if s is not None:
                del self._by_id[s.id]
            return None
        s.seen = now
        return s

    def new(self) -> Session:
        if len(self._by_id) >= MAX_SESSIONS:
            self._evict()
        s = Session(
            id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(24), seen=time.monotonic()
        )
        self._by_id[s.id] = s
        return s

    def renew(self, old: Session) -> Session:
        """A new id and CSRF token for what ``old`` held (at sign-in and sign-out)."""
        self._by_id.pop(old.id, None)
        s = self.new()
        s.name, s.roles, s.role = old.name, dict(old.roles), old.role
        return s

    def drop(self, s: Session) -> None:
        self._by_id.pop(s.id, None)

    def _evict(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._by_id.items()):
            if now - s.seen > self.idle:
                del self._by_id[sid]
        if len(self._by_id) >= MAX_SESSIONS:  # still full: the least recently seen half goes
            for sid in sorted(self._by_id, key=lambda k: self._by_id[k].seen)[: MAX_SESSIONS // 2]:
                del self._by_id[sid]
