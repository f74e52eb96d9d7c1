"""The portal's only way to the system: the three services' public HTTP APIs.

``Apis.call`` sends one request with a bearer token (the app's own, exchanged for its
credential and renewed before it expires, or the signed-in person's) and the person's language,
and returns the JSON, or raises :class:`ApiError` carrying the problem document's detail, which
the page shows as it is (the services answer in the language asked for)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from jifen.portal.settings import PortalSettings

ACCEPT_LANGUAGE = {"zh": "zh-CN", "en": "en"}


@dataclass
class ApiError(Exception):
    status: int
    detail: str
    reason: str | None = None

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


class Apis:
    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self.clients = {
            "tasks": httpx.AsyncClient(base_url=settings.tasks_url, timeout=10.0),
            "points": httpx.AsyncClient(base_url=settings.points_url, timeout=10.0),
            "redeem": httpx.AsyncClient(base_url=settings.redeem_url, timeout=10.0),
        }
        self._app_token: str | None = None
        self._app_token_until = 0.0
        self.org_id: str | None = None
        self.app_id: str | None = None  # the portal's own (its credential's app id)
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        for c in self.clients.values():
            await c.aclose()

    async def app_token(self) -> str:
        """The portal's own token, renewed a minute before it expires."""
        async with self._lock:
            if self._app_token is None or time.monotonic() > self._app_token_until:
                body = await self.call(
                    "tasks",
                    "POST",
                    "/v1/apps/token",
                    token=None,
                    json={"credential": self.settings.credential()},
                )
                self._app_token = body["access_token"]
                self.org_id = body["org_id"]
                self.app_id = body["app_id"]
                self._app_token_until = time.monotonic() + max(30, body["expires_in"] - 60)
            return self._app_token

    async def as_app(
        self, service: str, method: str, path: str, lang: str = "zh", **kw: Any
    ) -> Any:
        return await self.call(service, method, path, token=await self.app_token(), lang=lang, **kw)

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None,
        lang: str = "zh",
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Accept-Language": ACCEPT_LANGUAGE.get(lang, "zh-CN")}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            r = await self.clients[service].request(
                method, path, headers=headers, json=json, params=params
            )
        except httpx.HTTPError as exc:
            raise ApiError(503, f"{service}: {type(exc).__name__}", "unreachable") from exc
        if r.status_code >= 400:
            detail, reason = r.text[:500], None
            try:
                body = r.json()
                detail, reason = str(body.get("detail", detail)), body.get("reason")
            except ValueError:
                pass
            raise ApiError(r.status_code, detail, reason)
        return r.json() if r.content else None
