"""One request followed through the logs: the API's line that records the event a request
caused carries the request's X-Request-ID and the event id, and the event id is then in the
log of another process that published or applied it (README: `grep <event id> var/log/*.log`)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from jifen.devtools.devstack import DevStack
from tests.e2e.test_typical_journey import complete
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e


def _lines(path: Path) -> list[dict[str, object]]:
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a line a library printed itself
        if isinstance(doc, dict):
            out.append(doc)
    return out


async def test_a_request_id_leads_to_its_events_in_every_process_that_handled_them(
    services: DevStack, apis: dict[str, Api]
) -> None:
    tasks = apis["tasks"]
    done = await complete(tasks, f"vol-trace-{uuid.uuid4().hex[:6]}", 7)
    rid = f"trace-{uuid.uuid4().hex}"
    r = await tasks.http.post(
        f"/v1/completions/{done['id']}/verify",
        headers={**tasks.auth("officer"), "X-Request-ID": rid},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == rid
    logs = services.home / "log"

    async def recorded() -> list[str] | None:
        ids = [
            str(d["event_id"])
            for d in _lines(logs / "tasks-api.log")
            if d.get("request_id") == rid and "event_id" in d
        ]
        return ids or None

    event_ids = await eventually(recorded, timeout=30, what="the event recorded with the request")

    async def elsewhere() -> list[str] | None:
        found = []
        for path in sorted(logs.glob("*.log")):
            if path.name == "tasks-api.log":
                continue
            text = path.read_text(errors="replace")
            if any(e in text for e in event_ids):
                found.append(path.name)
        return found or None

    others = await eventually(elsewhere, timeout=60, what="the event id in another process's log")
    assert others, others
