"""The volunteer's points statement and the officer's report-in list (#20: "see it verified,
the points arrive, the statement"; "Officer: … members (report-in list)").

``/me/statement`` (the volunteer): the month's statement from the points service (``GET
/v1/accounts/{id}/statements/{month}``: opening and closing balance, earned by category, spent
by reward, adjustments) and the ledger's entries for the account, newest first, a page at a
time (``GET /v1/accounts/{id}/entries``: each with what it was, the points and the balance
after it). ``/officer/members`` (an officer or admin): who has reported in to a community
(tasks ``GET /v1/communities/{id}/members``), newest first, a page at a time.

Both only read, as the signed-in person: the APIs decide what they may see (a volunteer only
their own account, an officer only their organisation's communities)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.figures import month_or, shift_month, this_month
from jifen.portal.texts import text

if TYPE_CHECKING:
    from jifen.portal.app import Pages

Handler = Callable[..., Awaitable[Response]]

ENTRIES_SHOWN = 20  # a page of the statement's entries (the page budget holds at 30 KB)
MEMBERS_SHOWN = 50
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")


def _cursor(value: str | None) -> str | None:
    return value if value and _CURSOR.fullmatch(value) else None


def add_record_pages(app: FastAPI, pages: Pages, page: Callable[[Handler], Handler]) -> None:
    from jifen.portal.app import lang_of

    @app.get("/me/statement", response_class=HTMLResponse, summary="My points statement")
    @page
    async def statement(
        request: Request, month: str | None = None, cursor: str | None = None
    ) -> Response:
        me = pages.need(request, "volunteer")
        month = month_or(month, this_month())
        account = quote(me.subject, safe="")
        summary = await pages.call(
            request, "points", "GET", f"/v1/accounts/{account}/statements/{month}"
        )
        params: dict[str, Any] = {"limit": ENTRIES_SHOWN}
        if _cursor(cursor):
            params["cursor"] = cursor
        entries = await pages.call(
            request, "points", "GET", f"/v1/accounts/{account}/entries", params=params
        )
        rewards = await _reward_names(request, pages, summary["spent_by_reward"])
        return pages.render(
            request,
            "statement.html",
            summary=summary,
            rewards=rewards,
            entries=entries["items"],
            more=_more("/me/statement", month=month, cursor=entries["next_cursor"]),
            month=month,
            prev=shift_month(month, -1),
            next=shift_month(month, 1),
        )

    @app.get("/officer/members", response_class=HTMLResponse, summary="A community's report-ins")
    @page
    async def members(
        request: Request, community: str | None = None, cursor: str | None = None
    ) -> Response:
        pages.need(request, "officer", "admin")
        communities = await pages.items(request, "tasks", "/v1/communities", params={"limit": 1000})
        known = {c["id"] for c in communities}
        if community is not None and community not in known:
            # the API lists no one for a community it does not have: say there is none
            raise ApiError(404, text(lang_of(request), "mem_no_community"), "community")
        chosen = community or (communities[0]["id"] if communities else None)
        listed: dict[str, Any] = {"items": [], "next_cursor": None}
        if chosen is not None:
            params: dict[str, Any] = {"limit": MEMBERS_SHOWN}
            if _cursor(cursor):
                params["cursor"] = cursor
            listed = await pages.call(
                request,
                "tasks",
                "GET",
                f"/v1/communities/{quote(chosen, safe='')}/members",
                params=params,
            )
        return pages.render(
            request,
            "members.html",
            communities=communities,
            community=chosen or "",
            members=listed["items"],
            more=_more("/officer/members", community=chosen, cursor=listed["next_cursor"]),
        )


def _more(path: str, *, cursor: str | None, **keep: str | None) -> str | None:
    """The link to the next page of a list, if there is one, keeping what was chosen."""
    return f"{path}?{urlencode({**keep, 'cursor': cursor})}" if cursor else None


async def _reward_names(
    request: Request, pages: Pages, spent: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """The rewards a month's points went to, by id (one read each: a month has few)."""
    found: dict[str, dict[str, Any]] = {}
    for reward_id in list(spent)[:20]:
        if reward_id == "unknown":
            continue
        try:
            found[reward_id] = await pages.call(
                request, "redeem", "GET", f"/v1/rewards/{quote(reward_id, safe='')}"
            )
        except ApiError as e:
            if e.status != 404:
                raise
            # a reward no longer listed is shown by its id
    return found
