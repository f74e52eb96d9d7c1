"""Every API request leaves one JSON access log line with its request id (X-Request-ID: the
caller's if it is a sane one, else ours), returned on the response and carried by every log
line written while handling it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from jifen.kernel.runtime import JsonFormatter
from jifen.kernel.web import create_app

log = logging.getLogger("jifen.test.handler")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(old_level)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    """Jifen's lines (the HTTP client of the test logs its own)."""
    docs = [orjson.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return [d for d in docs if str(d["logger"]).startswith("jifen.")]


@pytest.fixture
def client() -> TestClient:
    app = create_app(service="tasks", title="t", description="d")

    @app.get("/v1/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, str]:
        log.info("reading job %s", job_id)
        return {"id": job_id}

    @app.post("/v1/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    return TestClient(app)


def test_the_callers_request_id_comes_back_and_is_on_every_line(
    client: TestClient, logs: io.StringIO
) -> None:
    r = client.get("/v1/jobs/j-1?code=123456", headers={"X-Request-ID": "app-7f3a.42"})
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "app-7f3a.42"
    handler, access = lines(logs)
    assert handler["msg"] == "reading job j-1" and handler["request_id"] == "app-7f3a.42"
    assert access["logger"] == "jifen.access"
    assert access["request_id"] == "app-7f3a.42"
    assert access["method"] == "GET" and access["status"] == 200
    assert access["route"] == "/v1/jobs/{job_id}"
    assert access["path"] == "/v1/jobs/j-1"  # the query string (a code, a token) is never logged
    assert "123456" not in str(lines(logs))
    assert isinstance(access["duration_ms"], float) and access["service"] == "tasks"


@pytest.mark.parametrize("given", [None, "", "two words", "x" * 129, "id\u00e9", "a\nb"])
def test_a_missing_or_odd_request_id_is_replaced_by_ours(
    client: TestClient, logs: io.StringIO, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    try:
        r = client.get("/v1/jobs/j-2", headers=headers)
    except Exception:  # an HTTP client refusing to send the header at all: fine too
        pytest.skip("the client refuses this header value")
    ours = r.headers["X-Request-ID"]
    assert ours != given and len(ours) == 32 and int(ours, 16) >= 0
    assert lines(logs)[-1]["request_id"] == ours


def test_two_requests_get_two_ids_and_refusals_before_the_route_are_logged_too(
    client: TestClient, logs: io.StringIO
) -> None:
    a = client.get("/v1/jobs/a").headers["X-Request-ID"]
    b = client.get("/v1/jobs/b").headers["X-Request-ID"]
    assert a != b
    r = client.post(
        "/v1/echo", content=b'{"a": "b", "a": "c"}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["reason"] == "duplicate_key"
    assert "X-Request-ID" in r.headers
    last = lines(logs)[-1]
    assert last["status"] == 422 and last["request_id"] == r.headers["X-Request-ID"]


def test_probes_and_scrapes_are_quiet_while_they_succeed(
    client: TestClient, logs: io.StringIO
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200
    assert not [line for line in lines(logs) if line["logger"] == "jifen.access"]
