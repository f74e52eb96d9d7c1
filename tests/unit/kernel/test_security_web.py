"""The shared HTTP edge refuses text the database cannot store and bodies over the bound,
with a 4xx that says what was wrong, before any handler runs."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from jifen.kernel.web import MAX_BODY_BYTES, create_app, max_body


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def _app() -> httpx.AsyncClient:
    app = create_app(service="t", title="t", description="t")

    @app.post("/notes")
    async def post(note: Note) -> dict[str, str]:
        return {"text": note.text}

    @app.get("/notes")
    async def get(q: str = "") -> dict[str, str]:
        return {"q": q}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_fine_chinese_text_with_combining_marks_and_rtl_passes_through() -> None:
    text = "为独居老人送餐 e\u0301 \u202e\u4e2d\u6587 \U0001f6b2"
    async with _app() as c:
        r = await c.post("/notes", json={"text": text})
    assert r.status_code == 200 and r.json()["text"] == text


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"text": "a\\u0000b"}', "body.text: text may not contain NUL"),
        (b'{"text": "\\ud800"}', "body.text: not valid Unicode"),
        (b'{"text": "\\udfff\\ud800"}', "body.text: not valid Unicode"),
        (b'{"te\\u0000xt": "a"}', "may not contain NUL"),
    ],
)
async def test_nul_and_lone_surrogates_in_a_body_are_422(raw: bytes, said: str) -> None:
    async with _app() as c:
        r = await c.post("/notes", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert said in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_valid_surrogate_pair_escape_is_fine() -> None:
    async with _app() as c:
        r = await c.post(
            "/notes",
            content=b'{"text": "\\ud83d\\udeb2"}',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 200 and r.json()["text"] == "\U0001f6b2"


async def test_nul_in_a_query_is_422() -> None:
    async with _app() as c:
        r = await c.get("/notes", params={"q": "a\x00b"})
    assert r.status_code == 422 and "query.q" in r.json()["detail"]


async def test_a_body_over_the_bound_is_413_even_without_content_length() -> None:
    big = b'{"text": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    async with _app() as c:
        r = await c.post("/notes", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert str(MAX_BODY_BYTES) in r.json()["detail"]
        r = await c.post("/notes", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413


async def test_malformed_json_is_still_the_validation_handlers_422() -> None:
    async with _app() as c:
        r = await c.post(
            "/notes", content=b'{"text": ', headers={"content-type": "application/json"}
        )
    assert r.status_code == 422 and "json" in r.json()["detail"].lower()


async def test_bytes_that_are_not_utf8_are_a_problem_document_saying_so() -> None:
    async with _app() as c:
        r = await c.post(
            "/notes", content=b'{"text": "\xff"}', headers={"content-type": "application/json"}
        )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "could not be parsed" in r.json()["detail"]


async def test_an_unknown_route_is_a_problem_document() -> None:
    async with _app() as c:
        r = await c.get("/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_nul_in_a_path_is_422() -> None:
    async with _app() as c:
        r = await c.get("/notes/a%00b")
    assert r.status_code == 422 and "path: text may not contain NUL" in r.json()["detail"]


async def test_an_endpoint_can_declare_a_smaller_bound_and_the_document_shows_it() -> None:
    app = create_app(service="t", title="t", description="t")

    @app.post("/small", openapi_extra=max_body(64))
    async def small(note: Note) -> dict[str, str]:
        return {"text": note.text}

    @app.post("/big")
    async def big(note: Note) -> dict[str, str]:
        return {"text": note.text}

    body = {"text": "x" * 100}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/small", json=body)
        assert r.status_code == 413 and "exceeds 64" in r.json()["detail"]
        assert (await c.post("/small", json={"text": "ok"})).status_code == 200
        assert (await c.post("/big", json=body)).status_code == 200
    assert app.openapi()["paths"]["/small"]["post"]["x-max-body-bytes"] == 64


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"text": "a", "text": "b"}', "text"),
        (b'{"text": "a", "meta": [{"k": 1, "k": 2}]}', "k"),
    ],
)
async def test_a_key_said_twice_is_422_not_last_wins(raw: bytes, key: str) -> None:
    async with _app() as c:
        r = await c.post("/notes", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "duplicate_key"
    assert f"duplicate key {key!r}" in r.json()["detail"]


async def test_json_nested_too_deep_for_the_duplicate_check_is_still_a_400() -> None:
    raw = b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    async with _app() as c:
        r = await c.post("/notes", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
