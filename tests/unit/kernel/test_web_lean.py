"""The lean request path (issue 18): a body is parsed once (the duplicate-key check's parse is
the one the route gets), routes without ParsedBodyRoute still get the body, and the request
id, problem bodies and metrics come from plain ASGI middleware as they did."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

import jifen.kernel.web as web
from jifen.kernel.metrics import HTTP_REQUESTS
from jifen.kernel.web import ParsedBodyRoute, create_app


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    tags: dict[str, int] = {}


def _client(route_class: type | None = ParsedBodyRoute) -> httpx.AsyncClient:
    app = create_app(service="lean", title="t", description="t")
    router = APIRouter(prefix="/v1", **({"route_class": route_class} if route_class else {}))

    @router.post("/notes", status_code=201)
    async def post(note: Note) -> dict[str, Any]:
        return {"text": note.text, "tags": note.tags}

    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("route_class", [ParsedBodyRoute, None])
async def test_a_body_is_parsed_once(route_class: type | None, monkeypatch: Any) -> None:
    parses: list[bytes] = []
    real = json.loads

    def counting(raw: Any, *a: Any, **k: Any) -> Any:
        parses.append(raw)
        return real(raw, *a, **k)

    monkeypatch.setattr(json, "loads", counting)
    async with _client(route_class) as c:
        r = await c.post("/v1/notes", json={"text": "送餐", "tags": {"a": 1}})
    assert len(parses) == (1 if route_class else 2)  # before the client parses the answer
    assert r.status_code == 201 and r.json() == {"text": "送餐", "tags": {"a": 1}}


async def test_a_duplicate_key_is_still_refused_and_named() -> None:
    async with _client() as c:
        r = await c.post(
            "/v1/notes",
            content=b'{"text": "a", "tags": {"x": 1, "y": 2, "x": 3}}',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 422 and r.json()["reason"] == "duplicate_key"
    assert "'x'" in r.json()["detail"]
    assert r.headers["content-type"] == "application/problem+json"
    assert len(r.headers["x-request-id"]) == 32


async def test_malformed_json_is_fastapis_422_as_before() -> None:
    async with _client() as c:
        r = await c.post(
            "/v1/notes", content=b'{"text": ', headers={"content-type": "application/json"}
        )
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "json_invalid"


async def test_request_id_metrics_and_an_unexpected_error() -> None:
    app = create_app(service="lean-x", title="t", description="t")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("no")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        r = await c.get("/healthz", headers={"x-request-id": "req-1.2:3"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-1.2:3"
        r = await c.get("/healthz", headers={"x-request-id": "no spaces please"})
        assert r.headers["x-request-id"] != "no spaces please"
        r = await c.get("/boom")
        assert r.status_code == 500
        assert r.json()["title"] == "服务器内部错误 — Internal Server Error"  # no language asked
        r = await c.get("/boom", headers={"accept-language": "en-GB"})
        assert r.status_code == 500 and r.json()["title"] == "Internal Server Error"
        r = await c.get("/nowhere")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    value = HTTP_REQUESTS.labels("lean-x", "/healthz", "GET", "200")._value.get()
    assert value == 2
    assert HTTP_REQUESTS.labels("lean-x", "/boom", "GET", "500")._value.get() == 2
    assert HTTP_REQUESTS.labels("lean-x", "<unmatched>", "GET", "404")._value.get() == 1
    assert web.PARSED_BODY == "jifen.parsed_body"
