"""The redemption POST's fast lane (jifen.kernel.lane) answers what the declared FastAPI
route answers: the same status, body, language and headers, for the placed redemption, its
replay and every refusal — run side by side against two databases in the same state, one app
with the lane and one without. And the lane really answers the hot path (it is not merely
passing everything on)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from jifen.kernel.auth import issue_token
from jifen.redeem.api.app import build_app
from jifen.redeem.db import MIGRATIONS, queries
from jifen.redeem.settings import RedeemSettings
from tests.integration.redeem.test_redeem_wallet import ORG, Ledger, reward
from tests.lanes import Asked, side_by_side


async def _world(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The same state in each database: 50 points for vol-a, a cheap and a dear reward."""
    conn = await asyncpg.connect(dsn)
    try:
        await Ledger(conn, queries(), "vol-a").credit(50)
        return await reward(conn, queries(), 10, stock=5), await reward(conn, queries(), 500)
    finally:
        await conn.close()


def _requests(keys: Path, cheap: str, dear: str) -> list[Asked]:
    def auth(role: str, subject: str) -> dict[str, str]:
        token = issue_token(keys, subject=subject, role=role, org=ORG)
        return {"Authorization": f"Bearer {token}"}

    def k(n: int, **more: str) -> dict[str, str]:
        return {"Idempotency-Key": f"lane-key-{n:04d}", **more}

    vol, app, key = auth("volunteer", "vol-a"), auth("app", "app-1"), k(1)
    placed, dear_one = {"reward_id": cheap}, {"reward_id": dear}
    at = "/v1/redemptions"
    return [
        ("placed", at, {**vol, **key}, placed),
        ("replayed", at, {**vol, **key}, placed),
        ("replayed with another body", at, {**vol, **key}, dear_one),
        ("too dear", at, {**vol, **k(2)}, dear_one),
        ("too dear, in English", at, {**vol, **k(3, **{"Accept-Language": "en"})}, dear_one),
        ("no such reward", at, {**vol, **k(4)}, {"reward_id": str(uuid.uuid4())}),
        ("no token", at, key, placed),
        ("not a bearer token", at, {"Authorization": "Basic eDp5", **key}, placed),
        ("forged token", at, {"Authorization": "Bearer abc.def.ghi", **key}, placed),
        ("an officer", at, {**auth("officer", "off-1"), **key}, placed),
        ("another's account", at, {**vol, **key}, {**placed, "account_id": "vol-b"}),
        ("an app without account", at, {**app, **key}, placed),
        ("an app for vol-a", at, {**app, **k(5)}, {**placed, "account_id": "vol-a"}),
        ("no key", at, vol, placed),
        ("a short key", at, {**vol, "Idempotency-Key": "short"}, placed),
        ("a key with a space", at, {**vol, "Idempotency-Key": "lane key 0006"}, placed),
        ("an unknown field", at, {**vol, **k(7)}, {**placed, "x": 1}),
        ("not a uuid", at, {**vol, **k(8)}, {"reward_id": "towel"}),
        ("a list", at, {**vol, **k(9)}, [placed]),
        ("as text/plain", at, {**vol, **k(10, **{"Content-Type": "text/plain"})}, placed),
    ]


async def test_the_lane_answers_what_the_declared_route_answers(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    issue_token(keys, subject="warm-up", role="admin", org=ORG)  # makes the signing key

    async def prepare(dsn: str, _: Any) -> list[Asked]:
        cheap, dear = await _world(dsn)
        return _requests(keys, str(cheap), str(dear))

    statuses, counted = await side_by_side(
        fresh_db,
        MIGRATIONS,
        lambda dsn: build_app(RedeemSettings(database_url=dsn, keys_dir=keys)),
        prepare,
    )
    assert statuses["placed"] == 201 and statuses["replayed"] == 200
    assert statuses["too dear"] == 409 and statuses["no token"] == 401
    assert statuses["an officer"] == 403 and statuses["a short key"] == 422
    # the lane itself answered the placed, the replayed, the refused and the unauthorised ones;
    # only the requests with a bad header or body went on to the declared route
    assert counted.answered == 13
