"""Side by side: one app with its fast lane (jifen.kernel.lane) and the same app without it,
in process on a database each, asked the same requests; what they answer compared after the
parts that differ between two runs by nature (ids, times, voucher codes) are blanked."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from jifen.kernel.lane import _Lane

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_CODE = re.compile(r'"voucher_code":"[^"]*"')
_KEPT_HEADERS = ("content-type", "content-language", "cache-control", "www-authenticate")

# a request: what it is, its path, its headers, its JSON body (sent as text when the headers
# say text/plain)
Asked = tuple[str, str, dict[str, str], Any]
Shape = tuple[int, str, dict[str, str | None]]


def shape(r: httpx.Response) -> Shape:
    body = _CODE.sub('"voucher_code":"…"', _TIME.sub("T", _UUID.sub("U", r.text)))
    return r.status_code, body, {h: r.headers.get(h) for h in _KEPT_HEADERS}


class Counted:
    """The app's one lane, counting the requests it answered itself (a refusal it raised
    included) rather than passed on to the declared route."""

    def __init__(self, app: FastAPI) -> None:
        (self.lane,) = [r for r in app.router.routes if isinstance(r, _Lane)]
        self.answered = 0
        inner = self.lane.endpoint

        async def counted(request: Any) -> Any:
            try:
                out = await inner(request)
            except Exception:
                self.answered += 1  # a refusal, answered by the app's handlers
                raise
            self.answered += out is not None
            return out

        self.lane.endpoint = counted


@asynccontextmanager
async def serving(app: FastAPI, lane: bool) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (its lifespan) and asked in process; without its lanes unless ``lane``."""
    if not lane:
        app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, _Lane)]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://lane", timeout=30
        ) as http:
            yield http


async def ask(http: httpx.AsyncClient, requests: list[Asked]) -> list[tuple[str, Shape]]:
    got = []
    for what, path, headers, body in requests:
        if headers.get("Content-Type") == "text/plain":
            r = await http.post(path, headers=headers, content=json.dumps(body))
        else:
            r = await http.post(path, headers=headers, json=body)
        got.append((what, shape(r)))
    return got


def assert_same(with_lane: list[tuple[str, Shape]], without: list[tuple[str, Shape]]) -> None:
    for (what, a), (_, b) in zip(with_lane, without, strict=True):
        assert a == b, what


async def side_by_side(
    fresh_db: Callable[[Path], Awaitable[str]],
    migrations: Path,
    build: Callable[[str], FastAPI],
    prepare: Callable[[str, httpx.AsyncClient], Awaitable[list[Asked]]],
) -> tuple[dict[str, int], Counted]:
    """The same world made twice (``prepare`` on a fresh database and its app, returning the
    requests to ask), asked once with the lane and once without; the answers must be the same.
    Returns each request's status (with the lane) and the lane's count."""
    answers: dict[bool, list[tuple[str, Shape]]] = {}
    counted: Counted | None = None
    for lane in (True, False):
        dsn = await fresh_db(migrations)
        app = build(dsn)
        if lane:
            counted = Counted(app)
        async with serving(app, lane) as http:
            answers[lane] = await ask(http, await prepare(dsn, http))
    assert_same(answers[True], answers[False])
    assert counted is not None
    return {what: shape[0] for what, shape in answers[True]}, counted
