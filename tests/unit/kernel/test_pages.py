"""The one list convention's pieces (issue 21, part 3): cursors that come back as the key they
were made of, refused in the caller's language when they are not one; a page cut from one row
more than asked; lists held in memory paged the same way; and the query's limits."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import httpx
import pytest
from fastapi import HTTPException

from jifen.kernel.pages import MAX_LIMIT, Page, PageRequest, Paging, decode, encode
from jifen.kernel.web import create_app

AT = datetime(2026, 12, 2, 8, 30, 1, 123456, tzinfo=UTC)
ID = UUID("0b6f8a52-6a4f-4e55-9d8e-8f6f3c2b1a90")


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("key", "types"),
    [
        ((AT, ID), (datetime, UUID)),
        ((AT.astimezone(timezone(timedelta(hours=8))), ID), (datetime, UUID)),
        ((2**62,), (int,)),
        ((0, "蓬莱路网格"), (int, str)),
        ((AT, "vol-0001"), (datetime, str)),
    ],
)
def test_a_cursor_gives_back_the_key_it_was_made_of(
    key: tuple[object, ...], types: tuple[type, ...]
) -> None:
    cursor = encode(key)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode(cursor, types) == key


@pytest.mark.parametrize(
    ("cursor", "types"),
    [
        ("not-a-cursor", (datetime, UUID)),  # not base64 of JSON
        (_cursor(b'["2026-12-02T08:30:01"]'), (datetime,)),  # a time without its zone
        (_cursor(b'["2026-12-02T08:30:01+00:00"]'), (datetime, UUID)),  # too few values
        (_cursor(b"[1, 2, 3]"), (int,)),  # too many
        (_cursor(b'["x"]'), (int,)),  # a text where a number is
        (_cursor(b"[true]"), (int,)),  # JSON's true is not a position
        (_cursor(b"[1e3]"), (int,)),
        (_cursor(b"[9223372036854775808]"), (int,)),  # beyond bigint
        (_cursor(b'["not-a-uuid"]'), (UUID,)),
        (_cursor(b'["0001-01-01T00:00:00+01:00"]'), (datetime,)),  # before the first instant
        (_cursor(b'["vol\\u0000"]'), (str,)),  # a NUL: no text column can hold it
        (_cursor(b"[5]"), (str,)),
        (_cursor(b'{"a": 1}'), (int,)),
        (_cursor("[\udcff]".encode("utf-8", "surrogatepass")), (int,)),
    ],
)
def test_a_cursor_that_is_not_a_key_of_the_list_is_refused_422(
    cursor: str, types: tuple[type, ...]
) -> None:
    with pytest.raises(HTTPException) as refused:
        decode(cursor, types)
    assert refused.value.status_code == 422
    detail = str(refused.value.detail)
    assert "游标" in detail and "is not a next_cursor this list gave" in detail


def test_a_page_is_cut_from_one_row_more_than_asked() -> None:
    rows = [{"n": i} for i in range(5)]
    req = PageRequest(limit=2, cursor=None)
    assert req.fetch == 3
    page = req.page(rows[: req.fetch], lambda r: (r["n"],), lambda r: r["n"])
    assert page.items == [0, 1] and page.next_cursor is not None
    assert decode(page.next_cursor, (int,)) == (1,)  # the last item given, not the one after
    last = req.page(rows[3:5], lambda r: (r["n"],), lambda r: r["n"])
    assert last.items == [3, 4] and last.next_cursor is None  # exactly `limit`: no next page
    assert req.after(int) == (None,)  # the first page: SQL's `$n IS NULL` starts the list


def test_a_list_held_in_memory_pages_like_a_stored_one() -> None:
    items = [(1, "b"), (0, "z"), (1, "a"), (0, "c")]
    seen, cursor, pages = [], None, 0
    while True:
        page = PageRequest(limit=3, cursor=cursor).slice(items, lambda i: i, int, str)
        seen += page.items
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(items) and pages == 2


async def test_limit_and_cursor_are_checked_before_the_route_runs() -> None:
    app = create_app(service="pages", title="t", description="t")

    @app.get("/things", response_model=Page[int])
    async def things(paging: Paging) -> Page[int]:
        (after,) = paging.after(int)
        start = 0 if after is None else after + 1
        return paging.page(list(range(start, min(start + paging.fetch, 10))), lambda n: (n,), int)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        walked, cursor = [], None
        while True:
            r = await http.get(
                "/things", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
            )
            assert r.status_code == 200, r.text
            walked += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert walked == list(range(10))
        assert (await http.get("/things")).json()["items"] == list(range(10))  # default 100
        for bad in (
            {"limit": 0},
            {"limit": MAX_LIMIT + 1},
            {"cursor": "a b"},
            {"cursor": "x" * 401},
        ):
            r = await http.get("/things", params=bad, headers={"Accept-Language": "en"})
            assert r.status_code == 422, (bad, r.text)
        r = await http.get(
            "/things", params={"cursor": _cursor(b'["x"]')}, headers={"Accept-Language": "zh-CN"}
        )
        assert r.status_code == 422 and "游标" in r.json()["detail"], r.text
        assert "next_cursor this list gave" not in r.json()["detail"]  # Chinese only, as asked
        assert (await http.get("/things", params={"limit": MAX_LIMIT})).status_code == 200
