"""The opt-in honour roll (#20: "Public, no sign-in: … and an opt-in honour roll").

``/c/{id}/honour`` (public): a community's roll for a month as the tasks API gives it to the
portal's app (``GET /v1/public/communities/{id}/honour-roll``): the volunteers who chose to be
listed, by the name on the records, with their services verified in the month and the points
earned, highest first. Nobody who has not opted in is on it, and no phone number or id. The
volunteer opts in or out on ``/me`` (the form posts to ``/me/honour``, which sets their own
consent with their own token: ``PUT /v1/me/honour-roll``); a refusal (no name on the records)
is shown beside that form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.figures import month_or, shift_month, this_month

if TYPE_CHECKING:
    from jifen.portal.app import Pages

Handler = Callable[..., Awaitable[Response]]

SHOWN = 50  # places on the page (the page budget; the API gives up to 100)


async def my_consent(pages: Pages, request: Request) -> dict[str, Any] | None:
    """The signed-in volunteer's consent for their /me page (None if the API refuses)."""
    try:
        found: dict[str, Any] = await pages.call(request, "tasks", "GET", "/v1/me/honour-roll")
    except ApiError as e:
        if e.status >= 500:
            raise
        return None
    return found


def add_honour_pages(app: FastAPI, pages: Pages, page: Callable[[Handler], Handler]) -> None:
    from jifen.portal.app import lang_of  # here: app imports this module

    @app.get(
        "/c/{community_id}/honour",
        response_class=HTMLResponse,
        summary="A community's honour roll for a month (opted-in volunteers only)",
    )
    @page
    async def honour_page(
        request: Request, community_id: str, month: str | None = None
    ) -> Response:
        shown = month_or(month, this_month())
        roll = await pages.apis.as_app(
            "tasks",
            "GET",
            f"/v1/public/communities/{community_id}/honour-roll",
            lang_of(request),
            params={"month": shown, "limit": SHOWN},
        )
        return pages.render(
            request,
            "honour.html",
            roll=roll,
            community_id=community_id,
            month=shown,
            prev=shift_month(shown, -1),
            next=shift_month(shown, 1),
        )

    @app.post("/me/honour", summary="List me on the honour roll, or no longer (volunteer)")
    @page
    async def set_consent(request: Request) -> Response:
        f = await pages.form(request)
        pages.need(request, "volunteer")
        listed = f.get("listed") == "1"
        try:
            await pages.call(request, "tasks", "PUT", "/v1/me/honour-roll", json={"listed": listed})
        except ApiError as e:
            if e.status >= 500:
                raise
            # shown beside the form on /me, the page this redirect leads to
            pages.session(request).flash["honour_refused"] = e.detail
            return pages.redirect(request, "/me?done=honour_refused#honour")
        return pages.redirect(request, f"/me?done={'honour_on' if listed else 'honour_off'}#honour")
