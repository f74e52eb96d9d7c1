"""Invitation links (#20: "a phone number and a one-time code (or an invitation link from an
officer)").

``/officer/invitations`` (officer, admin): invite a person on the organisation's records by phone
number or person id (tasks ``POST /v1/invitations``, as the signed-in officer); the link and its
QR code are shown once, on the page the form redirects to, then forgotten (the tasks service
keeps only the token's hash). The latest invitations are listed with a revoke button for those
not yet used. ``/invite/{token}`` (anyone): a page with a confirm button only — the GET calls no
API, so a link preview or a prefetch spends nothing; the button's POST (CSRF-checked) exchanges
the token as the portal's app (``POST /v1/signin/invitations``) and signs the person in as a
code does (a new session id, the roles the records give). A refused token (used, expired,
revoked, unknown) is said in the person's language on the same page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import segno
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.texts import Lang, text

if TYPE_CHECKING:
    from jifen.portal.app import Pages

Handler = Callable[..., Awaitable[Response]]

TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")  # the tasks API's token shape
SHOWN = 10  # invitations listed (the page budget)
STAFF = ("officer", "admin")


def _lang(request: Request) -> Lang:
    return "en" if request.cookies.get("lang") == "en" else "zh"


def _no_referrer(response: Response) -> Response:
    # the token is in the page's address: it must not leave in a Referer header
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def add_invite_pages(app: FastAPI, pages: Pages, page: Callable[[Handler], Handler]) -> None:
    @app.get(
        "/officer/invitations",
        response_class=HTMLResponse,
        summary="Invite a person on the records with a one-use link (officer, admin)",
    )
    @page
    async def invitations(request: Request, done: str | None = None) -> Response:
        pages.need(request, *STAFF)
        issued = pages.session(request).take("invited") if done == "issued" else None
        return _no_referrer(await _page(request, notice=done, issued=issued))

    async def _page(
        request: Request,
        *,
        notice: str | None = None,
        issued: dict[str, Any] | None = None,
        error: str | None = None,
        typed: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        listed = await pages.items(request, "tasks", "/v1/invitations", params={"limit": SHOWN})
        return pages.render(
            request,
            "invite_officer.html",
            status=status,
            here="/officer/invitations",
            invitations=listed,
            notice=notice,
            issued=issued,
            refusal=error,
            typed=typed or {},
        )

    @app.post("/officer/invitations", summary="Invite a person (officer, admin; link shown once)")
    @page
    async def invite(request: Request) -> Response:
        f = await pages.form(request)
        pages.need(request, *STAFF)
        lang = _lang(request)
        phone, person = f.get("phone", "").strip(), f.get("person_id", "").strip()
        if bool(phone) == bool(person):
            return await _page(request, error=text(lang, "inv_one_of"), typed=f, status=422)
        body = {"phone": phone} if phone else {"person_id": person}
        try:
            made = await pages.call(request, "tasks", "POST", "/v1/invitations", json=body)
        except ApiError as e:
            if e.status >= 500:
                raise
            detail = text(lang, "inv_bad_input") if e.status == 422 else e.detail
            return await _page(request, error=detail, typed=f, status=e.status)
        link = f"{pages.settings.base_url()}/invite/{made['token']}"
        # shown once: on the page this redirect leads to, then forgotten
        pages.session(request).flash["invited"] = {
            "link": link,
            "who": made["person_id"],
            "phone": made["phone"],
            "roles": made["roles"],
            "expires_at": made["expires_at"],
            "qr": segno.make(link, error="m").svg_inline(scale=4, title=text(lang, "inv_qr")),
        }
        return pages.redirect(request, "/officer/invitations?done=issued")

    @app.post("/officer/invitations/{invitation_id}/revoke", summary="Revoke an invitation")
    @page
    async def revoke(request: Request, invitation_id: uuid.UUID) -> Response:
        await pages.form(request)
        pages.need(request, *STAFF)
        try:
            await pages.call(request, "tasks", "POST", f"/v1/invitations/{invitation_id}/revoke")
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _page(request, error=e.detail, status=e.status)
        return pages.redirect(request, "/officer/invitations?done=revoked")

    # -- the invited person -----------------------------------------------------------------
    @app.get(
        "/invite/{token}",
        response_class=HTMLResponse,
        summary="An invitation link: a confirm button (nothing is spent by opening it)",
    )
    async def invited(request: Request, token: str) -> Response:
        return _no_referrer(pages.render(request, "invite.html", token=token))

    @app.post("/invite/{token}", response_class=HTMLResponse, summary="Sign in with the link")
    @page
    async def accept(request: Request, token: str) -> Response:
        await pages.form(request)
        lang = _lang(request)
        if not TOKEN.fullmatch(token):
            return _no_referrer(
                pages.render(
                    request,
                    "invite.html",
                    status=401,
                    token=token,
                    refusal=text(lang, "inv_not_a_link"),
                )
            )
        try:
            signed = await pages.apis.as_app(
                "tasks", "POST", "/v1/signin/invitations", lang, json={"token": token}
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return _no_referrer(
                pages.render(
                    request,
                    "invite.html",
                    status=e.status,
                    token=token,
                    refusal=e.detail,
                )
            )
        pages.signed_in(request, signed)
        return pages.redirect(request, "/me")
