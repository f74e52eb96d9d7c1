"""One list convention for every list endpoint of every service (issue 21, part 3).

A list answers ``{"items": [...], "next_cursor": "..."}``; ``next_cursor`` is null on the last
page, and otherwise is passed back as ``?cursor=`` for the page after. ``?limit=`` is at most
:data:`MAX_LIMIT` (:data:`DEFAULT_LIMIT` when not given). Paging is by keyset: the cursor holds
the sort key of the last item given, so an item is never given twice nor skipped when others
are added between pages (an item added before the cursor's position is not seen by that
pass). A cursor is opaque to the caller — base64url of the key's JSON — and one that is not a
key of the list it is given to is refused 422, in the caller's language.

Documented once, in docs/API.md ("Lists"); a static test holds every list route to it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Depends, HTTPException, Query
from pydantic import BaseModel, Field

from jifen.kernel.i18n import Said

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

T = TypeVar("T")
R = TypeVar("R")

# the types a key may be made of, and how each goes into JSON and comes back
Key = tuple[Any, ...]
_KINDS: dict[type, str] = {datetime: "t", UUID: "u", int: "i", str: "s"}


class Page(BaseModel, Generic[T]):
    """One page of a list: its items, and the cursor of the page after (null: none)."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=[None],
    )


def encode(key: Key) -> str:
    values: list[Any] = []
    for v in key:
        if isinstance(v, datetime):
            values.append(v.isoformat())
        elif isinstance(v, UUID):
            values.append(str(v))
        elif isinstance(v, bool) or not isinstance(v, (int, str)):
            raise TypeError(f"a page key cannot hold {type(v).__name__}")
        else:
            values.append(v)
    raw = json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bad_cursor(cursor: str) -> HTTPException:
    return HTTPException(
        422,
        Said(
            f"游标 {cursor!r} 不是这个列表给出的 next_cursor",
            f"cursor {cursor!r} is not a next_cursor this list gave",
        ),
    )


def decode(cursor: str, types: Sequence[type]) -> Key:
    """The key in ``cursor``, each value of the type given; 422 when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("not a key of this list")
        out: list[Any] = []
        for v, t in zip(values, types, strict=True):
            if t is datetime:
                at = datetime.fromisoformat(v)
                if at.tzinfo is None:
                    raise ValueError("a time without its zone")
                out.append(at.astimezone(UTC))  # OverflowError at the ends of time
            elif t is UUID:
                out.append(UUID(v))
            elif t is int:
                if isinstance(v, bool) or not isinstance(v, int) or abs(v) >= 2**63:
                    raise ValueError("not an integer")
                out.append(v)
            elif t is str:
                if not isinstance(v, str) or "\x00" in v:  # PostgreSQL's text holds no NUL
                    raise ValueError("not a text")
                out.append(v)
            else:  # pragma: no cover - a programming error, not the caller's
                raise TypeError(f"a page key cannot hold {t.__name__}")
        return tuple(out)
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, json.JSONDecodeError):
        raise bad_cursor(cursor) from None


@dataclass(frozen=True)
class PageRequest:
    """What the caller asked: at most ``limit`` items, after ``cursor`` (None: from the start)."""

    limit: int
    cursor: str | None

    @property
    def fetch(self) -> int:
        """How many rows to fetch: one more than the page, to know whether another follows."""
        return self.limit + 1

    def after(self, *types: type) -> Key:
        """The cursor's key, typed; all None on the first page (so SQL's ``$n IS NULL``
        starts the list)."""
        if self.cursor is None:
            return tuple(None for _ in types)
        return decode(self.cursor, types)

    def cut(self, rows: Sequence[R], key: Callable[[R], Key]) -> tuple[list[R], str | None]:
        """The page out of ``fetch`` rows, and the next cursor when there were more."""
        if len(rows) <= self.limit:
            return list(rows), None
        page = list(rows[: self.limit])
        return page, encode(key(page[-1]))

    def page(self, rows: Sequence[R], key: Callable[[R], Key], out: Callable[[R], T]) -> Page[T]:
        page, cursor = self.cut(rows, key)
        return Page(items=[out(r) for r in page], next_cursor=cursor)

    def slice(self, items: Iterable[T], key: Callable[[T], Key], *types: type) -> Page[T]:
        """A page of a list held in memory (built-ins beside stored rows), ordered by ``key``."""
        ordered = sorted(items, key=key)
        if self.cursor is not None:
            start = decode(self.cursor, types)
            ordered = [i for i in ordered if key(i) > start]
        return self.page(ordered[: self.fetch], key, lambda i: i)


def page_request(
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_LIMIT,
            description=f"At most this many items (1–{MAX_LIMIT}; {DEFAULT_LIMIT} when not given)",
        ),
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=400,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="The `next_cursor` of the previous page; none for the first page",
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


Paging = Annotated[PageRequest, Depends(page_request)]
