"""The completion POST's fast lane (jifen.kernel.lane) answers what the declared FastAPI route
answers: the same status, body, language and headers for the posted completion, its replay and
every refusal — run side by side against two databases in the same state, one tasks API with
the lane and one without. And the lane really answers the hot path."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jifen.kernel.auth import issue_token
from jifen.tasks.api.app import build_app
from jifen.tasks.db import MIGRATIONS
from jifen.tasks.settings import TasksSettings
from tests.lanes import Asked, side_by_side

ORG = "org-lane"


class World:
    def __init__(self, http: Any, keys: Path) -> None:
        self.http, self.keys = http, keys

    def auth(self, role: str, subject: str | None = None) -> dict[str, str]:
        token = issue_token(self.keys, subject=subject or f"{role}-1", role=role, org=ORG)
        return {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, role: str, body: Any) -> Any:
        r = await self.http.post(path, headers=self.auth(role), json=body)
        assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text}"
        return r.json()

    async def build(self) -> str:
        """A community, three volunteers on record (a and c claimed a place), one job now."""
        await self.post("/v1/communities", "officer", {"id": "grid-lane", "name": "快车道网格"})
        for v in ("a", "b", "c"):
            account = f"vol-{v}"
            await self.post(
                "/v1/people",
                "admin",
                {"person_id": account, "phone": f"1340000000{ord(v) % 10}", "role": "volunteer"},
            )
            await self.post("/v1/communities/grid-lane/members", "app", {"account_id": account})
        now = datetime.now(UTC)
        job = await self.post(
            "/v1/jobs",
            "officer",
            {
                "community_id": "grid-lane",
                "title": "为独居老人送餐 Meal delivery",
                "category": "meal_delivery",
                "points": 20,
                "capacity": 5,
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat(),
            },
        )
        for v in ("a", "c"):
            await self.post(f"/v1/jobs/{job['id']}/claims", "app", {"account_id": f"vol-{v}"})
        return str(job["id"])


def _requests(w: World, job: str) -> list[Asked]:
    def k(n: int, **more: str) -> dict[str, str]:
        return {"Idempotency-Key": f"lane-done-{n:04d}", **more}

    app, key = w.auth("app"), k(1)
    vol_b, vol_c = w.auth("volunteer", "vol-b"), w.auth("volunteer", "vol-c")
    done = f"/v1/jobs/{job}/completions"
    mine = {"account_id": "vol-a", "evidence": {"note": "送了六份 six boxes"}, "quantity": 6}
    b, c = {"account_id": "vol-b"}, {"account_id": "vol-c"}
    return [
        ("posted", done, {**app, **key}, mine),
        ("replayed", done, {**app, **key}, mine),
        ("replayed with another body", done, {**app, **key}, c),
        ("by the volunteer", done, {**vol_c, **k(2)}, c),
        ("not claimed", done, {**app, **k(3)}, b),
        ("not claimed, in English", done, {**app, **k(4, **{"Accept-Language": "en"})}, b),
        ("no such job", f"/v1/jobs/{uuid.uuid4()}/completions", {**app, **k(5)}, mine),
        ("for another", done, {**vol_b, **k(6)}, c),
        ("an officer", done, {**w.auth("officer"), **key}, mine),
        ("no token", done, key, mine),
        ("forged token", done, {"Authorization": "Bearer x.y.z", **key}, mine),
        ("a job id not a uuid", "/v1/jobs/menu-1/completions", {**app, **key}, mine),
        ("no key", done, app, mine),
        ("a short key", done, {**app, "Idempotency-Key": "k1"}, mine),
        ("an unknown field", done, {**app, **k(7)}, {**mine, "x": 1}),
        ("a quantity as text", done, {**app, **k(8)}, {**mine, "quantity": "6"}),
        ("a list", done, {**app, **k(9)}, [mine]),
        ("as text/plain", done, {**app, **k(10, **{"Content-Type": "text/plain"})}, mine),
    ]


async def test_the_lane_answers_what_the_declared_route_answers(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    issue_token(keys, subject="warm-up", role="admin", org=ORG)  # makes the signing key

    async def prepare(_: str, http: Any) -> list[Asked]:
        w = World(http, keys)
        return _requests(w, await w.build())

    statuses, counted = await side_by_side(
        fresh_db,
        MIGRATIONS,
        lambda dsn: build_app(TasksSettings(database_url=dsn, keys_dir=keys)),
        prepare,
    )
    assert statuses["posted"] == 201 and statuses["replayed"] == 200
    assert statuses["by the volunteer"] == 201 and statuses["not claimed"] == 409
    assert statuses["no such job"] == 404 and statuses["an officer"] == 403
    assert statuses["no token"] == 401 and statuses["a short key"] == 422
    # the lane answered the first eleven itself; a bad path, header or body went on
    assert counted.answered == 11
