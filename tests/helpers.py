"""Test helpers: polling with a deadline (never a sleep as synchronisation), API clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from jifen.kernel.devstack import DevStack

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


class Api:
    """A small client for one service with a token per role."""

    def __init__(self, stack: DevStack, service: str, org: str = "jiangmen-riders") -> None:
        self.stack = stack
        self.base = stack.url(service)
        self.org = org
        self.http = httpx.AsyncClient(base_url=self.base, timeout=20)

    def auth(self, role: str, subject: str | None = None, org: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token(role, subject, org or self.org)}"}

    async def close(self) -> None:
        await self.http.aclose()
