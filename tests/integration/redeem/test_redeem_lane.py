"""The redemption POST's fast lane (jifen.kernel.lane) answers what the declared FastAPI
route answers: the same status, body, language and headers, for the placed redemption, its
replay and every refusal — run side by side against two databases in the same state, one app
with the lane and one without. And the lane really answers the hot path (it is not merely
passing everything on)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from jifen.kernel.auth import issue_token
from jifen.kernel.lane import _Lane
from jifen.redeem.api.app import build_app
from jifen.redeem.db import MIGRATIONS, queries
from jifen.redeem.settings import RedeemSettings
from tests.integration.redeem.test_redeem_wallet import ORG, Ledger, reward

# what differs between two runs by nature: ids, times, voucher codes, request ids
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_CODE = re.compile(r'"voucher_code":"[^"]*"')
_KEPT_HEADERS = ("content-type", "content-language", "cache-control", "www-authenticate")


def _same_shape(r: httpx.Response) -> tuple[int, str, dict[str, str | None]]:
    body = _CODE.sub('"voucher_code":"…"', _TIME.sub("T", _UUID.sub("U", r.text)))
    return r.status_code, body, {h: r.headers.get(h) for h in _KEPT_HEADERS}


@asynccontextmanager
async def _redeem_app(dsn: str, keys: Path, lane: bool) -> AsyncIterator[tuple[FastAPI, Any]]:
    app = build_app(RedeemSettings(database_url=dsn, keys_dir=keys))
    if not lane:
        app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, _Lane)]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://redeem", timeout=30
        ) as http:
            yield app, http


async def _world(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The same state in each database: 50 points for vol-a, a cheap and a dear reward."""
    conn = await asyncpg.connect(dsn)
    try:
        await Ledger(conn, queries(), "vol-a").credit(50)
        return await reward(conn, queries(), 10, stock=5), await reward(conn, queries(), 500)
    finally:
        await conn.close()


def _requests(keys: Path, cheap: str, dear: str) -> list[tuple[str, dict[str, str], Any]]:
    def auth(role: str, subject: str) -> dict[str, str]:
        token = issue_token(keys, subject=subject, role=role, org=ORG)
        return {"Authorization": f"Bearer {token}"}

    vol = auth("volunteer", "vol-a")
    app = auth("app", "app-1")
    key = {"Idempotency-Key": "lane-key-0001"}
    placed = {"reward_id": cheap}
    return [
        ("placed", {**vol, **key}, placed),
        ("replayed", {**vol, **key}, placed),
        ("replayed with another body", {**vol, **key}, {"reward_id": dear}),
        ("too dear", {**vol, "Idempotency-Key": "lane-key-0002"}, {"reward_id": dear}),
        (
            "too dear, in English",
            {**vol, "Idempotency-Key": "lane-key-0003", "Accept-Language": "en"},
            {"reward_id": dear},
        ),
        (
            "no such reward",
            {**vol, "Idempotency-Key": "lane-key-0004"},
            {"reward_id": str(uuid.uuid4())},
        ),
        ("no token", key, placed),
        ("not a bearer token", {"Authorization": "Basic eDp5", **key}, placed),
        ("forged token", {"Authorization": "Bearer abc.def.ghi", **key}, placed),
        ("an officer", {**auth("officer", "off-1"), **key}, placed),
        ("another's account", {**vol, **key}, {**placed, "account_id": "vol-b"}),
        ("an app without account", {**app, **key}, placed),
        (
            "an app for vol-a",
            {**app, "Idempotency-Key": "lane-key-0005"},
            {**placed, "account_id": "vol-a"},
        ),
        ("no key", vol, placed),
        ("a short key", {**vol, "Idempotency-Key": "short"}, placed),
        ("a key with a space", {**vol, "Idempotency-Key": "lane key 0006"}, placed),
        ("an unknown field", {**vol, "Idempotency-Key": "lane-key-0007"}, {**placed, "x": 1}),
        ("not a uuid", {**vol, "Idempotency-Key": "lane-key-0008"}, {"reward_id": "towel"}),
        ("a list", {**vol, "Idempotency-Key": "lane-key-0009"}, [placed]),
        (
            "as text/plain",
            {**vol, "Idempotency-Key": "lane-key-0010", "Content-Type": "text/plain"},
            placed,
        ),
    ]


async def test_the_lane_answers_what_the_declared_route_answers(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    issue_token(keys, subject="warm-up", role="admin", org=ORG)  # makes the signing key
    answers: dict[bool, list[tuple[str, Any]]] = {}
    lane_answered = 0
    for lane in (True, False):
        dsn = await fresh_db(MIGRATIONS)
        cheap, dear = await _world(dsn)
        async with _redeem_app(dsn, keys, lane) as (app, http):
            if lane:
                lanes = [r for r in app.router.routes if isinstance(r, _Lane)]
                assert len(lanes) == 1
                endpoint = lanes[0].endpoint

                async def counted(request: Any, endpoint: Any = endpoint) -> Any:
                    nonlocal lane_answered
                    try:
                        out = await endpoint(request)
                    except Exception:
                        lane_answered += 1  # a refusal, answered by the app's handlers
                        raise
                    lane_answered += out is not None
                    return out

                lanes[0].endpoint = counted
            got = []
            for what, headers, body in _requests(keys, str(cheap), str(dear)):
                if headers.get("Content-Type") == "text/plain":
                    raw = json.dumps(body)
                    r = await http.post("/v1/redemptions", headers=headers, content=raw)
                else:
                    r = await http.post("/v1/redemptions", headers=headers, json=body)
                got.append((what, _same_shape(r)))
            answers[lane] = got
    for (what, with_lane), (_, without) in zip(answers[True], answers[False], strict=True):
        assert with_lane == without, what
    statuses = {what: shape[0] for what, shape in answers[True]}
    assert statuses["placed"] == 201 and statuses["replayed"] == 200
    assert statuses["too dear"] == 409 and statuses["no token"] == 401
    assert statuses["an officer"] == 403 and statuses["a short key"] == 422
    # the lane itself answered the placed, the replayed, the refused and the unauthorised ones;
    # only the requests with a bad header or body went on to the declared route
    assert lane_answered == 13
