"""Signed webhooks (issue 21, part 5), through the real processes: an app subscribes to its
organisation's events and receives each one signed, tried again after a failure, every try in
the delivery log; an ended webhook receives nothing more; only apps and the admin subscribe,
an app sees only its own, another organisation nothing; a webhook may not point into the
service's own network."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jifen.tasks.domain.webhooks import verify
from tests.helpers import Api, ensure_community, eventually

pytestmark = pytest.mark.e2e


class Receiver:
    """An app's endpoint on 127.0.0.1: records what arrives, answers 500 to the first
    ``fail_first`` posts and 204 to the rest."""

    def __init__(self, fail_first: int = 0) -> None:
        self.got: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.got) < receiver.fail_first else 204
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, event_type: str) -> list[dict[str, Any]]:
        return [json.loads(b) for h, b, _ in self.got if h.get("x-jifen-event-type") == event_type]


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.server.shutdown()


async def _publish(tasks: Api, org: str, title: str) -> dict[str, Any]:
    await ensure_community(tasks, org=org)
    now = datetime.now(UTC)
    r = await tasks.http.post(
        "/v1/jobs",
        headers=tasks.auth("officer", org=org),
        json={
            "community_id": "penglai-grid",
            "title": title,
            "category": "meal_delivery",
            "points": 10,
            "capacity": 2,
            "starts_at": (now + timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=1, hours=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


async def _subscribe(
    tasks: Api, org: str, url: str, role: str = "app", subject: str | None = None
) -> dict[str, Any]:
    r = await tasks.http.post(
        "/v1/webhooks",
        headers=tasks.auth(role, subject, org=org),
        json={"url": url, "event_types": ["jifen.tasks.job.published.v1"]},
    )
    assert r.status_code == 201, r.text
    hook: dict[str, Any] = r.json()
    return hook


async def test_an_app_receives_each_event_signed_and_retried_with_every_try_logged(
    apis: dict[str, Api], receivers: list[Receiver]
) -> None:
    tasks = apis["tasks"]
    org = f"org-{uuid.uuid4().hex[:8]}"
    rx = Receiver(fail_first=1)
    receivers.append(rx)
    hook = await _subscribe(tasks, org, rx.url)
    assert hook["secret"].startswith("whsec_")
    job = await _publish(tasks, org, "助老送餐 Meal delivery")

    async def delivered() -> bool:
        return len(rx.got) >= 2

    await eventually(delivered, timeout=60, what="the event delivered after one failure")
    (_, b1, s1), (h2, b2, s2) = rx.got[:2]
    assert (s1, s2) == (500, 204) and b1 == b2  # the same delivery, tried again
    event = json.loads(b2)
    assert event["type"] == "jifen.tasks.job.published.v1" and event["data"]["job_id"] == job["id"]
    assert h2["x-jifen-event-id"] == event["id"]
    stamp = int(h2["x-jifen-timestamp"])
    assert verify(hook["secret"], stamp, b2, h2["x-jifen-signature"])
    assert not verify("whsec_guess", stamp, b2, h2["x-jifen-signature"])

    app = tasks.auth("app", org=org)

    async def logged() -> list[dict[str, Any]] | None:
        r = await tasks.http.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=app)
        rows: list[dict[str, Any]] = r.json()["items"]
        return rows if rows and rows[0]["status"] == "delivered" else None

    (row,) = await eventually(logged, timeout=30, what="the delivery logged as delivered")
    assert row["attempts"] == 2 and [t["http_status"] for t in row["log"]] == [500, 204]
    assert row["event_id"] == event["id"]

    # ended: the next job reaches a second, live webhook and not this one
    marker = Receiver()
    receivers.append(marker)
    await _subscribe(tasks, org, marker.url, role="admin")
    r = await tasks.http.delete(f"/v1/webhooks/{hook['id']}", headers=app)
    assert r.status_code == 200, r.text
    later = await _publish(tasks, org, "探访 Elder visit")

    async def marked() -> bool:
        return any(b["data"]["job_id"] == later["id"] for b in marker.bodies(event["type"]))

    await eventually(marked, timeout=60, what="the live webhook receiving the next job")
    assert all(b["data"]["job_id"] != later["id"] for b in rx.bodies(event["type"]))


async def test_who_may_subscribe_and_see_a_webhook_and_where_it_may_point(
    apis: dict[str, Api], receivers: list[Receiver]
) -> None:
    tasks = apis["tasks"]
    org, other = f"org-{uuid.uuid4().hex[:8]}", f"org-{uuid.uuid4().hex[:8]}"
    rx = Receiver()
    receivers.append(rx)
    hook = await _subscribe(tasks, org, rx.url, subject="app-one")
    body = {"url": rx.url, "event_types": ["jifen.tasks.job.published.v1"]}
    for role in ("volunteer", "officer", "merchant", "auditor", "operator"):
        r = await tasks.http.post("/v1/webhooks", headers=tasks.auth(role, org=org), json=body)
        assert r.status_code == 403, (role, r.text)
    path = f"/v1/webhooks/{hook['id']}/deliveries"
    # another app of the organisation, and another organisation's app and admin: not found
    for who in (tasks.auth("app", "app-two", org=org), tasks.auth("app", "app-one", org=other),
                tasks.auth("admin", org=other)):  # fmt: skip
        assert (await tasks.http.get(path, headers=who)).status_code == 404
        assert (
            await tasks.http.delete(f"/v1/webhooks/{hook['id']}", headers=who)
        ).status_code == 404
    listed = await tasks.http.get("/v1/webhooks", headers=tasks.auth("app", "app-two", org=org))
    assert listed.json()["items"] == []
    mine = await tasks.http.get("/v1/webhooks", headers=tasks.auth("app", "app-one", org=org))
    assert [w["id"] for w in mine.json()["items"]] == [hook["id"]] and "secret" not in mine.text
    admin = await tasks.http.get("/v1/webhooks", headers=tasks.auth("admin", org=org))
    assert [w["id"] for w in admin.json()["items"]] == [hook["id"]]
    # another organisation's events never reach this organisation's webhook
    await _publish(tasks, other, "别处的岗位 elsewhere")
    marker = await _publish(tasks, org, "本组织岗位 ours")

    async def ours() -> bool:
        return any(
            b["data"]["job_id"] == marker["id"] for b in rx.bodies("jifen.tasks.job.published.v1")
        )

    await eventually(ours, timeout=60, what="this organisation's event delivered")
    assert {b["data"]["org_id"] for b in rx.bodies("jifen.tasks.job.published.v1")} == {org}
    # no webhook into the service's own network, no unknown event types
    app = tasks.auth("app", org=org)
    for url in ("http://10.0.0.8/hook", "https://169.254.169.254/latest", "https://localhost/x"):
        r = await tasks.http.post(
            "/v1/webhooks", headers={**app, "Accept-Language": "zh-CN"}, json={**body, "url": url}
        )
        assert r.status_code == 422 and r.json()["reason"] == "bad_webhook", (url, r.text)
    r = await tasks.http.post(
        "/v1/webhooks", headers=app, json={**body, "event_types": ["jifen.x.v1"]}
    )
    assert r.status_code == 422 and r.json()["reason"] == "bad_webhook", r.text
