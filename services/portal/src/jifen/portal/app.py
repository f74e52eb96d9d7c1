"""The portal's pages: server-rendered HTML, no JavaScript, Chinese first with an English switch.

Public (no sign-in): the communities, each community's service menu for a month (and the same
as a printable A4 poster, a QR code per job), its public figures for a month, a job. Signed
in with a phone code: the volunteer claims, checks in with the code the officer's screen shows,
reports the job done and sees their points and service record; the officer verifies or rejects
completions, several at once, approves those an organisation limit held, and shows the
rotating check-in code as a QR code. The admin sets the organisation's limits, issues and
revokes app credentials and proposes or, as the second admin, decides adjustments (``/admin``);
the auditor checks the latest signed checkpoint and reads the points report (``/audit``; both
in ``jifen.portal.staff``). Operators read what the embedded SMS sender kept (``/ops``). Every
call goes to the services' public APIs (``jifen.portal.apis``); an API's refusal is shown in
the person's language above the form, with what they typed kept in it."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import segno
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jifen.portal.apis import ApiError, Apis
from jifen.portal.board import add_board_pages
from jifen.portal.figures import Figures, month_or, month_window, shift_month, this_month
from jifen.portal.figures import count as count_figures
from jifen.portal.honour import add_honour_pages, my_consent
from jifen.portal.invite import add_invite_pages
from jifen.portal.photos import PhotoRefused, add_photo_pages, photo_src
from jifen.portal.publish import add_publish_pages
from jifen.portal.records import add_record_pages
from jifen.portal.sessions import COOKIE, RoleToken, Session, Sessions
from jifen.portal.settings import PortalSettings
from jifen.portal.staff import add_staff_pages
from jifen.portal.texts import Lang, text
from starlette.exceptions import HTTPException as StarletteHTTPException

from jifen.kernel.web import create_app, said

log = logging.getLogger("jifen.portal")
HERE = Path(__file__).parent
LOCAL = ZoneInfo("Asia/Shanghai")  # the schemes' months are local months
ROLE_ORDER = ("volunteer", "officer", "merchant", "admin", "auditor")
templates = Jinja2Templates(directory=HERE / "templates")


class Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


def lang_of(request: Request) -> Lang:
    return "en" if request.cookies.get("lang") == "en" else "zh"


def local_time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


templates.env.filters["local"] = local_time
templates.env.filters["photo"] = photo_src  # a portal-photo/ reference -> /photos/<hex>.jpg


class Pages:
    """What every handler needs: the settings, the APIs and the sessions."""

    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings
        self.apis = Apis(settings)
        self.sessions = Sessions(settings.session_idle_seconds)

    # -- sessions and rendering --------------------------------------------------------
    def session(self, request: Request) -> Session:
        s: Session | None = getattr(request.state, "session", None)
        if s is None:
            s = self.sessions.get(request.cookies.get(COOKIE)) or self.sessions.new()
            request.state.session = s
        return s

    def _cookie(self, request: Request, response: Response) -> Response:
        s = self.session(request)
        if request.cookies.get(COOKIE) != s.id:
            response.set_cookie(
                COOKIE,
                s.id,
                httponly=True,
                samesite="lax",
                secure=self.settings.secure_cookies,
                path="/",
            )
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        lang = lang_of(request)
        s = self.session(request)
        me = s.current

        def t(key: str, **values: object) -> str:
            return text(lang, key, **values)

        response = templates.TemplateResponse(
            request,
            name,
            {
                "lang": lang,
                "t": t,
                "s": s,
                "me": me,
                "csrf": s.csrf,
                # the language switch comes back to this page, its query too (a month, a
                # merchant, a scanned voucher)
                "here": quote(
                    request.url.path + (f"?{request.url.query}" if request.url.query else "")
                ),
                "role_label": lambda r: t(f"role_{r}"),
                **ctx,
            },
            status_code=status,
        )
        return self._cookie(request, response)

    def signed_in(self, request: Request, signed: dict[str, Any]) -> None:
        """Start the session of a sign-in's answer (a code's or an invitation's): a new id,
        so nothing planted before it survives."""
        s = self.sessions.renew(self.session(request))
        until = time.time() + min(x["expires_in"] for x in signed["sessions"]) - 60
        s.roles = {
            x["role"]: RoleToken(x["role"], x["person_id"], x["access_token"], until)
            for x in signed["sessions"]
        }
        s.name = signed["display_name"] or signed["person_id"]
        s.role = next((r for r in ROLE_ORDER if r in s.roles), None)
        request.state.session = s

    def redirect(self, request: Request, to: str) -> Response:
        return self._cookie(request, RedirectResponse(to, status_code=303))

    async def form(self, request: Request) -> dict[str, str]:
        """The posted form, after its CSRF token was checked."""
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.session(request).csrf_ok(fields.get("csrf")):
            raise ApiError(403, text(lang_of(request), "csrf"), "csrf")
        return fields

    def need(self, request: Request, *roles: str) -> RoleToken:
        me = self.session(request).current
        if me is None:  # back to this page after sign-in, its query too (a scanned link's)
            query = request.url.query
            raise Redirect(
                f"/signin?next={quote(request.url.path + ('?' + query if query else ''))}"
            )
        if roles and me.role not in roles:
            raise ApiError(403, text(lang_of(request), "not_your_role"), "role")
        return me

    async def items(self, request: Request, service: str, path: str, **kw: Any) -> list[Any]:
        """The first page of a list (the APIs' one list convention: ``items``, ``next_cursor``),
        up to its ``limit`` (at most 1,000)."""
        page = await self.call(request, service, "GET", path, **kw)
        items: list[Any] = page["items"]
        return items

    async def call(self, request: Request, service: str, method: str, path: str, **kw: Any) -> Any:
        """An API call as the signed-in person (or the portal, signed out)."""
        me = self.session(request).current
        lang = lang_of(request)
        if me is None:
            return await self.apis.as_app(service, method, path, lang=lang, **kw)
        try:
            return await self.apis.call(service, method, path, token=me.token, lang=lang, **kw)
        except ApiError as e:
            if e.status == 401:  # the person's token expired or was refused: sign in again
                self.sessions.drop(self.session(request))
                raise Redirect(f"/signin?next={quote(request.url.path)}") from e
            raise


def build_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    pages = Pages(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await pages.apis.close()

    app = create_app(
        service="portal",
        title="Jifen portal",
        description="The community app on the public APIs: pages for the public, volunteers, "
        "officers and operators.",
        lifespan=lifespan,
    )
    # the portal verifies no token itself (the services do): it needs no key to start
    app.state.needs_keys = False
    app.state.pages = pages
    figures_kept: dict[tuple[str, str], tuple[float, Figures]] = {}
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def apis_reachable() -> tuple[bool, str]:
        await pages.apis.app_token()
        return True, f"app credential accepted by tasks (organisation {pages.apis.org_id})"

    app.state.ready_checks["apis"] = apis_reachable

    Handler = Callable[..., Awaitable[Response]]

    def page(handler: Handler) -> Handler:
        """An API refusal or a missing sign-in as a page, not a traceback."""

        @functools.wraps(handler)
        async def run(request: Request, *a: Any, **kw: Any) -> Response:
            try:
                return await handler(request, *a, **kw)
            except Redirect as r:
                return pages.redirect(request, r.to)
            except ApiError as e:
                status = e.status if e.status in (403, 404, 409, 422, 429) else 503
                detail = e.detail if e.status != 503 else text(lang_of(request), "api_down")
                return pages.render(request, "error.html", status=status, detail=detail)

        return run

    # -- public -----------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, summary="Home: the communities")
    @page
    async def home(request: Request) -> Response:
        communities = await pages.items(request, "tasks", "/v1/communities", params={"limit": 1000})
        return pages.render(request, "home.html", communities=communities, month=this_month())

    @app.get("/lang/{lang}", summary="Switch the language (a cookie), back to the page")
    async def switch(request: Request, lang: str, next: str = "/") -> Response:
        to = next if next.startswith("/") and not next.startswith("//") else "/"
        response = pages.redirect(request, to)
        response.set_cookie(
            "lang", "en" if lang == "en" else "zh", samesite="lax", max_age=31536000
        )
        return response

    @app.get("/c/{community_id}/menu", response_class=HTMLResponse, summary="A community's menu")
    @page
    async def menu(
        request: Request, community_id: str, month: str | None = None, page_no: int = 1
    ) -> Response:
        month = month if month and _is_month(month) else this_month()
        communities = (
            await pages.apis.as_app(
                "tasks", "GET", "/v1/communities", lang_of(request), params={"limit": 1000}
            )
        )["items"]
        community = next((c for c in communities if c["id"] == community_id), None)
        if community is None:
            raise ApiError(404, text(lang_of(request), "not_found"))
        jobs = (
            await pages.apis.as_app(
                "tasks",
                "GET",
                "/v1/jobs",
                lang_of(request),
                params={"community_id": community_id, "month": month, "limit": 1000},
            )
        )["items"]
        shown, pager = paged(jobs, page_no)
        return pages.render(
            request,
            "menu.html",
            community=community,
            month=month,
            jobs=shown,
            pager=pager,
            prev=shift_month(month, -1),
            next=shift_month(month, 1),
        )

    # -- a community's printable poster and its public figures -----------------------------
    @app.get(
        "/c/{community_id}/poster",
        response_class=HTMLResponse,
        summary="A community's month menu as a printable A4 poster, a QR code per job",
    )
    @page
    async def poster(
        request: Request, community_id: str, month: str | None = None, sheet: int = 1
    ) -> Response:
        month = month_or(month, this_month())
        community = await _community(request, community_id)
        jobs = (
            await pages.apis.as_app(
                "tasks",
                "GET",
                "/v1/jobs",
                lang_of(request),
                params={"community_id": community_id, "month": month, "limit": 1000},
            )
        )["items"]
        # one A4 sheet a page: eight cards, each QR code about 2.3 KB of SVG (the page budget)
        shown, pager = paged(jobs, sheet, size=POSTER_SHEET)
        base = settings.base_url()
        cards = []
        for j in shown:
            url = f"{base}/jobs/{j['id']}"
            cards.append(
                {
                    **j,
                    "url": url,
                    "left": max(0, j["capacity"] - j["claimed"]),
                    "qr": segno.make(url, error="m").svg_inline(scale=3, title=j["title"]),
                }
            )
        return pages.render(
            request,
            "poster.html",
            community=community,
            month=month,
            cards=cards,
            pager=pager,
            base=base,
            sheet_size=POSTER_SHEET,
        )

    @app.get(
        "/c/{community_id}/figures",
        response_class=HTMLResponse,
        summary="A community's public figures for a month",
    )
    @page
    async def figures_page(
        request: Request, community_id: str, month: str | None = None
    ) -> Response:
        shown = month_or(month, this_month())
        community = await _community(request, community_id)
        figures = await _figures(request, community_id, shown)
        return pages.render(
            request,
            "figures.html",
            community=community,
            month=shown,
            f=figures,
            prev=shift_month(shown, -1),
            next=shift_month(shown, 1),
        )

    async def _figures(request: Request, community_id: str, month: str) -> Figures:
        """Counted from the lists an app may read, remembered a few seconds (a public page:
        a crowd on it is not a crowd on the tasks API)."""
        key = (community_id, month)
        kept = figures_kept.get(key)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        lang = lang_of(request)
        menu = (
            await pages.apis.as_app(
                "tasks",
                "GET",
                "/v1/jobs",
                lang,
                params={"community_id": community_id, "month": month, "limit": 1000},
            )
        )["items"]
        _, until = month_window(month)
        verified: list[dict[str, Any]] = []
        cursor: str | None = None
        complete = True
        for _ in range(FIGURES_MAX_PAGES):
            params: dict[str, Any] = {
                "community_id": community_id,
                "status": "verified",
                "limit": 1000,
            }
            if cursor:
                params["cursor"] = cursor
            found = await pages.apis.as_app("tasks", "GET", "/v1/completions", lang, params=params)
            verified.extend(found["items"])
            cursor = found["next_cursor"]
            # in order of submission: one submitted after the month cannot be verified in it
            if not cursor or (
                found["items"]
                and datetime.fromisoformat(found["items"][-1]["submitted_at"]) >= until
            ):
                break
        else:
            complete = False
        points_of = {j["id"]: int(j["points"]) for j in menu}
        for job_id in {c["job_id"] for c in verified} - set(points_of):
            job = await pages.apis.as_app("tasks", "GET", f"/v1/jobs/{job_id}", lang)
            points_of[job_id] = int(job["points"])
        redeemed = await pages.apis.as_app(
            "redeem", "GET", "/v1/reports/redemptions/figure", lang, params={"month": month}
        )
        figures = dataclasses.replace(
            count_figures(month, verified, points_of, menu, complete=complete),
            redeemed_points=int(redeemed["points"]),
            redemptions=int(redeemed["fulfilled"]),
        )
        if len(figures_kept) > 1000:
            figures_kept.clear()
        figures_kept[key] = (time.monotonic() + FIGURES_KEPT_SECONDS, figures)
        return figures

    # -- a community's wish wall and hazards (public), and a volunteer's post to them --------
    async def _community(request: Request, community_id: str) -> dict[str, Any]:
        communities = (
            await pages.apis.as_app(
                "tasks", "GET", "/v1/communities", lang_of(request), params={"limit": 1000}
            )
        )["items"]
        community = next((c for c in communities if c["id"] == community_id), None)
        if community is None:
            raise ApiError(404, text(lang_of(request), "not_found"))
        found: dict[str, Any] = community
        return found

    async def _listed(
        request: Request,
        what: CommunityList,
        community_id: str,
        *,
        cursor: str | None = None,
        notice: str | None = None,
        error: str | None = None,
        typed: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        """A page of a community's public list (as the portal's app), its form beside it."""
        community = await _community(request, community_id)
        params: dict[str, Any] = {"community_id": community_id, "limit": 20, **what.params}
        if cursor:
            params["cursor"] = cursor
        found = await pages.apis.as_app("tasks", "GET", what.path, lang_of(request), params=params)
        return pages.render(
            request,
            what.template,
            status=status,
            community=community,
            next_cursor=found["next_cursor"],
            notice=notice,
            error=error,
            typed=typed or {},
            **what.shape(found["items"]),
        )

    async def _post_to(request: Request, what: CommunityList, community_id: str) -> Response:
        """A volunteer's post from the form beside the list; a refusal is shown with the list,
        what they typed kept."""
        lang = lang_of(request)
        try:  # a form with a photo is multipart (jifen.portal.photos); CSRF first either way
            f = await photos.form(request) if what.photo else await pages.form(request)
        except PhotoRefused as e:  # too large to be read: nothing typed could be kept
            return await _listed(request, what, community_id, error=e.says(lang), status=e.status)
        me = pages.need(request, "volunteer")
        body = what.body(f, me.subject, community_id)
        try:
            if what.photo:
                body["evidence_ref"] = await photos.keep(request, f, me.subject)
        except PhotoRefused as e:
            return await _listed(
                request, what, community_id, error=e.says(lang), typed=f, status=e.status
            )
        try:
            if what.report_in:  # reporting in to the community first (200 when already in)
                await pages.call(
                    request,
                    "tasks",
                    "POST",
                    f"/v1/communities/{quote(community_id)}/members",
                    json={"account_id": me.subject},
                )
            await pages.call(request, "tasks", "POST", what.path, json=body)
        except ApiError as e:
            if e.status >= 500:
                raise
            kept = {**f, "photo_kept": body.get("evidence_ref", "")}  # not asked for again
            return await _listed(
                request, what, community_id, error=e.detail, typed=kept, status=e.status
            )
        return pages.redirect(request, f"/c/{quote(community_id)}/{what.slug}?done={what.done}")

    @app.get(
        "/c/{community_id}/wishes", response_class=HTMLResponse, summary="A community's wish wall"
    )
    @page
    async def wishes(
        request: Request, community_id: str, cursor: str | None = None, done: str | None = None
    ) -> Response:
        return await _listed(
            request, WALL, community_id, cursor=_cursor_or_none(cursor), notice=done
        )

    @app.post("/c/{community_id}/wishes", summary="Post a wish (a volunteer)")
    @page
    async def post_wish(request: Request, community_id: str) -> Response:
        return await _post_to(request, WALL, community_id)

    # -- hazards reported and fixed (public) and reporting one (a volunteer) -------------
    @app.get(
        "/c/{community_id}/hazards",
        response_class=HTMLResponse,
        summary="A community's hazards, reported and fixed",
    )
    @page
    async def hazards(
        request: Request, community_id: str, cursor: str | None = None, done: str | None = None
    ) -> Response:
        return await _listed(
            request, HAZARDS, community_id, cursor=_cursor_or_none(cursor), notice=done
        )

    @app.post("/c/{community_id}/hazards", summary="Report a hazard (a volunteer)")
    @page
    async def report_hazard(request: Request, community_id: str) -> Response:
        return await _post_to(request, HAZARDS, community_id)

    @app.get("/officer/board", response_class=HTMLResponse, summary="Wishes and hazards board")
    @page
    async def board(
        request: Request,
        community: str | None = None,
        needs_cursor: str | None = None,
        hazards_cursor: str | None = None,
    ) -> Response:
        pages.need(request, "officer", "admin")
        community = _id_or_none(community)
        keep = {"community": community} if community else {}
        lists = {}
        for name, path, cursor in (
            ("needs", "/v1/needs", _cursor_or_none(needs_cursor)),
            ("hazards", "/v1/hazards", _cursor_or_none(hazards_cursor)),
        ):
            params: dict[str, Any] = {
                "limit": 50,
                **({"community_id": community} if community else {}),
            }
            if cursor:
                params["cursor"] = cursor
            lists[name] = await pages.call(request, "tasks", "GET", path, params=params)
        return pages.render(
            request,
            "board.html",
            communities=await pages.items(
                request, "tasks", "/v1/communities", params={"limit": 1000}
            ),
            community=community or "",
            keep=keep,
            needs=lists["needs"]["items"],
            needs_next=lists["needs"]["next_cursor"],
            hazards=lists["hazards"]["items"],
            hazards_next=lists["hazards"]["next_cursor"],
        )

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, summary="One job")
    @page
    async def job_page(
        request: Request, job_id: uuid.UUID, done: str | None = None, code: str | None = None
    ) -> Response:
        # ``code``: the check-in code, when the page was opened from the officer's screen's QR
        typed = {"checkin_code": code} if code and _CHECKIN_CODE.fullmatch(code) else None
        return await _job(request, job_id, notice=done, typed=typed)

    async def _job(
        request: Request,
        job_id: uuid.UUID,
        *,
        notice: str | None = None,
        error: str | None = None,
        typed: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        job = await pages.call(request, "tasks", "GET", f"/v1/jobs/{job_id}")
        me = pages.session(request).current
        mine: list[Any] = []  # the volunteer's completions of this job, their photos shown
        if me is not None and me.role == "volunteer":
            mine = await pages.items(
                request,
                "tasks",
                "/v1/completions",
                params={"account_id": me.subject, "job_id": str(job_id), "limit": 10},
            )
        return pages.render(
            request,
            "job.html",
            status=status,
            job=job,
            mine=mine,
            notice=notice,
            error=error,
            typed=typed or {},
            key=f"portal-{uuid.uuid4()}",
        )

    # -- signing in ---------------------------------------------------------------------
    @app.get("/signin", response_class=HTMLResponse, summary="Sign in: the phone number")
    async def signin_form(request: Request, next: str = "/me") -> Response:
        return pages.render(request, "signin.html", next=_local(next), typed={})

    @app.post("/signin", response_class=HTMLResponse, summary="Send the code")
    @page
    async def signin_send(request: Request) -> Response:
        f = await pages.form(request)
        try:
            sent = await pages.apis.as_app(
                "tasks",
                "POST",
                "/v1/signin/codes",
                lang_of(request),
                json={"phone": f.get("phone", "")},
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return pages.render(
                request,
                "signin.html",
                status=e.status,
                error=e.detail,
                typed=f,
                next=_local(f.get("next", "/me")),
            )
        return pages.render(
            request,
            "signin_code.html",
            phone=f["phone"],
            sent_to=sent["sent_to"],
            next=_local(f.get("next", "/me")),
        )

    @app.post("/signin/code", response_class=HTMLResponse, summary="Sign in with the code")
    @page
    async def signin_code(request: Request) -> Response:
        f = await pages.form(request)
        phone, nxt = f.get("phone", ""), _local(f.get("next", "/me"))
        try:
            signed = await pages.apis.as_app(
                "tasks",
                "POST",
                "/v1/signin/tokens",
                lang_of(request),
                json={"phone": phone, "code": f.get("code", "").strip()},
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return pages.render(
                request,
                "signin_code.html",
                status=e.status,
                error=e.detail,
                phone=phone,
                sent_to="",
                next=nxt,
            )
        pages.signed_in(request, signed)
        return pages.redirect(request, nxt)

    @app.post("/signout", summary="Sign out")
    @page
    async def signout(request: Request) -> Response:
        await pages.form(request)
        pages.sessions.drop(pages.session(request))
        request.state.session = pages.sessions.new()
        return pages.redirect(request, "/")

    @app.post("/me/role", summary="Act in another of one's roles")
    @page
    async def switch_role(request: Request) -> Response:
        f = await pages.form(request)
        s = pages.session(request)
        if f.get("role") in s.roles:
            s.role = f["role"]
        return pages.redirect(request, "/me")

    # -- signed in ----------------------------------------------------------------------
    @app.get("/me", response_class=HTMLResponse, summary="Mine: points, record, work")
    @page
    async def mine(request: Request, done: str | None = None, page_no: int = 1) -> Response:
        me = pages.need(request)
        ctx: dict[str, Any] = {"notice": done}
        if me.role == "volunteer":
            try:
                ctx["balance"] = await pages.call(
                    request, "points", "GET", f"/v1/accounts/{me.subject}/balance"
                )
            except ApiError as e:
                if e.status != 404:  # no entry yet
                    raise
                ctx["balance"] = {"balance": 0, "earned": 0, "spent": 0}
            ctx["record"] = await pages.items(  # their latest work first
                request,
                "tasks",
                "/v1/completions",
                params={"account_id": me.subject, "order": "newest", "limit": 50},
            )
            ctx["titles"] = await _titles(request)
            ctx["honour"] = await my_consent(pages, request)  # listed on the honour roll?
            ctx["redemptions"] = await pages.items(
                request, "redeem", "/v1/redemptions", params={"limit": 20}
            )
        elif me.role in ("officer", "admin"):
            # the jobs of this month not ended yet, soonest first
            jobs = await pages.items(
                request, "tasks", "/v1/jobs", params={"month": this_month(), "limit": 1000}
            )
            now = datetime.now(UTC)
            current = [j for j in jobs if datetime.fromisoformat(j["ends_at"]) >= now]
            ctx["jobs"], ctx["pager"] = paged(current, page_no)
        return pages.render(request, "me.html", **ctx)

    async def _titles(request: Request) -> dict[str, str]:
        jobs = await pages.items(request, "tasks", "/v1/jobs", params={"limit": 1000})
        return {j["id"]: j["title"] for j in jobs}

    @app.post("/jobs/{job_id}/claim", summary="Claim a place (volunteer)")
    @page
    async def claim(request: Request, job_id: uuid.UUID) -> Response:
        await pages.form(request)
        me = pages.need(request, "volunteer")
        job = await pages.call(request, "tasks", "GET", f"/v1/jobs/{job_id}")
        # reporting in to the job's community first (200 when already a member)
        await pages.call(
            request,
            "tasks",
            "POST",
            f"/v1/communities/{job['community_id']}/members",
            json={"account_id": me.subject},
        )
        try:
            await pages.call(
                request,
                "tasks",
                "POST",
                f"/v1/jobs/{job_id}/claims",
                json={"account_id": me.subject},
            )
        except ApiError as e:
            if e.reason != "already_claimed":
                return await _job(request, job_id, error=e.detail, status=e.status)
        return pages.redirect(request, f"/jobs/{job_id}?done=claimed")

    @app.post("/jobs/{job_id}/complete", summary="Report a job done (volunteer)")
    @page
    async def complete(request: Request, job_id: uuid.UUID) -> Response:
        lang = lang_of(request)
        try:  # multipart, a photo optional (jifen.portal.photos); CSRF first
            f = await photos.form(request)
        except PhotoRefused as e:  # too large to be read: nothing typed could be kept
            return await _job(request, job_id, error=e.says(lang), status=e.status)
        me = pages.need(request, "volunteer")
        try:
            photo = await photos.keep(request, f, me.subject)
        except PhotoRefused as e:
            return await _job(request, job_id, error=e.says(lang), typed=f, status=e.status)
        evidence = {"note": f.get("note", "").strip(), **({"reference": photo} if photo else {})}
        body: dict[str, Any] = {"account_id": me.subject, "evidence": evidence}
        if f.get("checkin_code", "").strip():
            body["checkin_code"] = f["checkin_code"].strip().upper()
        try:
            await pages.call(
                request,
                "tasks",
                "POST",
                f"/v1/jobs/{job_id}/completions",
                json=body,
                idempotency_key=f.get("key") or f"portal-{uuid.uuid4()}",
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            kept = {**f, "photo_kept": photo}  # the photo is not asked for again
            return await _job(request, job_id, error=e.detail, typed=kept, status=e.status)
        return pages.redirect(request, "/me?done=completed")

    @app.get("/officer/queue", response_class=HTMLResponse, summary="Completions to verify")
    @page
    async def queue(
        request: Request,
        done: str | None = None,
        community: str | None = None,
        show: str | None = None,
        page_no: int = 1,
    ) -> Response:
        pages.need(request, "officer", "admin")
        s = pages.session(request)
        bulk = s.take("bulk") if done == "bulk" else None
        return await _queue(
            request,
            notice=done,
            community=_id_or_none(community),
            held=show == "held",
            page_no=page_no,
            bulk=bulk,
        )

    async def _queue(
        request: Request,
        *,
        notice: str | None = None,
        error: str | None = None,
        typed: dict[str, str] | None = None,
        status: int = 200,
        community: str | None = None,
        held: bool = False,
        page_no: int = 1,
        bulk: dict[str, Any] | None = None,
        picked: set[str] | None = None,
    ) -> Response:
        """The completions waiting for an officer (``submitted``), or, with ``held``, those an
        organisation limit held (``held``: an officer approves an officer-level hold, only the
        admin one beyond the second limit)."""
        me = pages.need(request, "officer", "admin")
        communities = await pages.items(request, "tasks", "/v1/communities", params={"limit": 1000})
        lists: dict[str, list[Any]] = {}
        for name in ("submitted", "held"):
            params: dict[str, Any] = {"status": name, "limit": 1000}
            if community:
                params["community_id"] = community
            lists[name] = await pages.items(request, "tasks", "/v1/completions", params=params)
        shown, pager = paged(lists["held" if held else "submitted"], page_no)
        if bulk is not None and picked is None:
            picked = set(bulk.get("keep", []))
        return pages.render(
            request,
            "queue.html",
            status=status,
            waiting=shown,
            pager=pager,
            held=held,
            counts={k: len(v) for k, v in lists.items()},
            may_approve=lambda c: me.role == "admin" or c.get("hold_level") == "officer",
            titles=await _titles(request),
            notice=notice,
            error=error,
            typed=typed or {},
            communities=communities,
            community=community or "",
            bulk=bulk,
            picked=picked or set(),
        )

    @app.post("/officer/completions/{completion_id}/verify", summary="Verify (officer)")
    @page
    async def verify(request: Request, completion_id: uuid.UUID) -> Response:
        f = await pages.form(request)
        pages.need(request, "officer", "admin")
        community = _id_or_none(f.get("community"))
        try:
            await pages.call(request, "tasks", "POST", f"/v1/completions/{completion_id}/verify")
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _queue(request, error=e.detail, status=e.status, community=community)
        return pages.redirect(request, _queue_url("verified", community))

    @app.post("/officer/queue/verify", summary="Verify the selected completions (officer)")
    @page
    async def verify_selected(request: Request) -> Response:
        """One POST, one tasks call per selected completion, in the order shown; each one's
        outcome (verified, held by a limit, or refused and why, in the person's language) is
        shown on the queue it redirects to, the refused ones still selected."""
        f = await pages.form(request)
        pages.need(request, "officer", "admin")
        community = _id_or_none(f.get("community"))
        asked = list(dict.fromkeys((await request.form()).getlist("ids")))
        ids = [x for x in asked if isinstance(x, str)][:BULK_MAX]
        lang = lang_of(request)
        if not ids:
            return await _queue(
                request, error=text(lang, "bulk_none"), status=422, community=community
            )
        titles = await _titles(request)
        results: list[dict[str, Any]] = []
        for raw in ids:
            item: dict[str, Any] = {"id": raw, "job": "", "account": ""}
            try:
                cid = uuid.UUID(raw)
            except ValueError:
                results.append({**item, "outcome": "refused", "detail": text(lang, "not_found")})
                continue
            try:
                done = await pages.call(request, "tasks", "POST", f"/v1/completions/{cid}/verify")
            except ApiError as e:
                detail = e.detail if e.status < 500 else text(lang, "api_down")
                results.append({**item, "outcome": "refused", "detail": detail})
                continue
            results.append(
                {
                    **item,
                    "job": titles.get(done["job_id"], done["job_id"]),
                    "account": done["account_id"],
                    # beyond an organisation limit a verification holds it for review instead
                    "outcome": "held" if done["status"] == "held" else "verified",
                    "detail": "",
                }
            )
        await _name_refused(request, results, titles)
        pages.session(request).flash["bulk"] = {
            "results": results,
            "keep": [r["id"] for r in results if r["outcome"] == "refused"],
        }
        return pages.redirect(request, _queue_url("bulk", community))

    async def _name_refused(
        request: Request, results: list[dict[str, Any]], titles: dict[str, str]
    ) -> None:
        """The job and volunteer of each refused item, where the API still shows it."""
        for r in results:
            if r["outcome"] != "refused" or r["job"]:
                continue
            try:
                c = await pages.call(request, "tasks", "GET", f"/v1/completions/{r['id']}")
            except (ApiError, ValueError):
                continue
            r["job"], r["account"] = titles.get(c["job_id"], c["job_id"]), c["account_id"]

    @app.post("/officer/completions/{completion_id}/approve", summary="Approve a held one")
    @page
    async def approve(request: Request, completion_id: uuid.UUID) -> Response:
        f = await pages.form(request)
        pages.need(request, "officer", "admin")
        community = _id_or_none(f.get("community"))
        reason = f.get("reason", "").strip()
        try:
            await pages.call(
                request,
                "tasks",
                "POST",
                f"/v1/completions/{completion_id}/approve",
                json={"reason": reason},
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _queue(
                request,
                error=e.detail,
                typed={str(completion_id): f.get("reason", "")},
                status=e.status,
                community=community,
                held=True,
            )
        return pages.redirect(request, _queue_url("approved", community, held=True))

    @app.post("/officer/completions/{completion_id}/reject", summary="Reject (officer)")
    @page
    async def reject(request: Request, completion_id: uuid.UUID) -> Response:
        f = await pages.form(request)
        pages.need(request, "officer", "admin")
        held = f.get("show") == "held"  # a held one is rejected from the held list
        try:
            await pages.call(
                request,
                "tasks",
                "POST",
                f"/v1/completions/{completion_id}/reject",
                json={"reason": f.get("reason", "").strip()},
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _queue(
                request,
                error=e.detail,
                typed={str(completion_id): f.get("reason", "")},
                status=e.status,
                community=_id_or_none(f.get("community")),
                held=held,
            )
        return pages.redirect(
            request, _queue_url("rejected", _id_or_none(f.get("community")), held=held)
        )

    @app.get(
        "/officer/jobs/{job_id}/checkin", response_class=HTMLResponse, summary="Check-in screen"
    )
    @page
    async def checkin_screen(request: Request, job_id: uuid.UUID, auto: bool = False) -> Response:
        pages.need(request, "officer", "admin")
        job = await pages.call(request, "tasks", "GET", f"/v1/jobs/{job_id}")
        code = await pages.call(request, "tasks", "GET", f"/v1/jobs/{job_id}/checkin-code")
        refresh_at = datetime.fromisoformat(code["refresh_at"])
        wait = max(5, int((refresh_at - datetime.now(UTC)).total_seconds()) + 1)
        # the job's page with the code in it: a phone's camera opens the form filled in (the
        # API's qr_payload is for apps that scan it themselves)
        scanned = f"{settings.base_url()}/jobs/{job_id}?" + urlencode({"code": code["code"]})
        qr = segno.make(scanned, error="m").svg_inline(scale=6, title=code["code"])
        return pages.render(
            request,
            "checkin.html",
            job=job,
            code=code,
            qr=qr,
            refresh=wait if auto else None,
            minutes=max(1, code["step_seconds"] // 60),
        )

    # -- the points supermarket, vouchers, the merchant's counter ------------------------
    @app.get("/shop", response_class=HTMLResponse, summary="The points supermarket")
    @page
    async def shop(request: Request, merchant: str | None = None, page_no: int = 1) -> Response:
        return await _shop(request, merchant=_id_or_none(merchant), page_no=page_no)

    async def _shop(
        request: Request,
        *,
        error: str | None = None,
        status: int = 200,
        merchant: str | None = None,
        page_no: int = 1,
    ) -> Response:
        params: dict[str, Any] = {"available": "true", "limit": 500}
        if merchant:
            params["merchant_id"] = merchant
        rewards, pager = paged(
            await pages.items(request, "redeem", "/v1/rewards", params=params), page_no
        )
        me = pages.session(request).current
        wallet = None
        if me is not None and me.role == "volunteer":
            try:
                wallet = await pages.call(request, "redeem", "GET", f"/v1/wallets/{me.subject}")
            except ApiError as e:
                if e.status != 404:  # no points yet
                    raise
                wallet = {"spendable": 0, "held": 0, "maturing": 0}
        return pages.render(
            request,
            "shop.html",
            status=status,
            rewards=rewards,
            wallet=wallet,
            error=error,
            key=f"portal-{uuid.uuid4()}",
            pager=pager,
            merchant=merchant or "",
        )

    @app.post("/shop/{reward_id}/redeem", summary="Redeem a reward (volunteer)")
    @page
    async def redeem(request: Request, reward_id: uuid.UUID) -> Response:
        f = await pages.form(request)
        pages.need(request, "volunteer")
        try:
            made = await pages.call(
                request,
                "redeem",
                "POST",
                "/v1/redemptions",
                json={"reward_id": str(reward_id)},
                idempotency_key=f.get("key") or f"portal-{uuid.uuid4()}",
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _shop(request, error=e.detail, status=e.status)
        return pages.redirect(request, f"/vouchers/{made['id']}")

    @app.get("/vouchers/{redemption_id}", response_class=HTMLResponse, summary="A voucher")
    @page
    async def voucher(request: Request, redemption_id: uuid.UUID) -> Response:
        pages.need(request, "volunteer")
        r = await pages.call(request, "redeem", "GET", f"/v1/redemptions/{redemption_id}")
        reward = await pages.call(request, "redeem", "GET", f"/v1/rewards/{r['reward_id']}")
        qr = None
        if r.get("voucher_code") and r["status"] == "confirmed":
            # the merchant's phone camera opens the counter at this voucher, its code filled in
            scan = scan_url(settings.base_url(), r["id"], r["voucher_code"])
            qr = segno.make(scan, error="m").svg_inline(scale=6, title=r["voucher_code"])
        return pages.render(request, "voucher.html", r=r, reward=reward, qr=qr)

    @app.get("/merchant/scan", response_class=HTMLResponse, summary="A scanned voucher (merchant)")
    @page
    async def scanned(request: Request, r: uuid.UUID, code: str = "") -> Response:
        """What a voucher's QR code opens on the merchant's phone: that one redemption, its
        code filled in; handing it over is still the form's POST (a link never fulfils)."""
        pages.need(request, "merchant")
        found = await pages.call(request, "redeem", "GET", f"/v1/redemptions/{r}")
        reward = await pages.call(request, "redeem", "GET", f"/v1/rewards/{found['reward_id']}")
        return pages.render(
            request,
            "merchant_scan.html",
            r=found,
            reward=reward,
            code=code.strip().upper()[:64],
        )

    @app.get("/merchant", response_class=HTMLResponse, summary="The merchant's counter")
    @page
    async def counter(request: Request, done: str | None = None) -> Response:
        pages.need(request, "merchant")
        return await _counter(request, notice=done)

    async def _counter(
        request: Request,
        *,
        notice: str | None = None,
        error: str | None = None,
        typed: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response:
        me = pages.need(request, "merchant")
        waiting = await pages.items(
            request, "redeem", "/v1/redemptions", params={"status": "confirmed", "limit": 200}
        )
        rewards = await pages.items(
            request,
            "redeem",
            "/v1/rewards",
            params={"merchant_id": me.subject, "active": "true", "limit": 200},
        )
        names = {x["id"]: x for x in rewards}
        return pages.render(
            request,
            "merchant.html",
            status=status,
            waiting=waiting,
            rewards=rewards,
            names=names,
            notice=notice,
            error=error,
            typed=typed or {},
        )

    @app.post("/merchant/redemptions/{redemption_id}/fulfil", summary="Fulfil a voucher (merchant)")
    @page
    async def fulfil(request: Request, redemption_id: uuid.UUID) -> Response:
        f = await pages.form(request)
        pages.need(request, "merchant")
        code = f.get("voucher_code", "").strip().upper()
        try:
            await pages.call(
                request,
                "redeem",
                "POST",
                f"/v1/redemptions/{redemption_id}/fulfil",
                json={"voucher_code": code},
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _counter(
                request, error=e.detail, typed={str(redemption_id): code}, status=e.status
            )
        return pages.redirect(request, "/merchant?done=fulfilled")

    # -- operators ----------------------------------------------------------------------
    @app.get(
        "/ops", response_class=HTMLResponse, summary="Operators: the embedded sender's messages"
    )
    @page
    async def ops(request: Request) -> Response:
        op = pages.session(request).roles.get("operator")
        messages = None
        if op is not None:
            messages = (
                await pages.apis.call(
                    "tasks", "GET", "/v1/signin/messages", token=op.token, lang=lang_of(request)
                )
            )["items"]
        return pages.render(request, "ops.html", messages=messages)

    @app.post("/ops", response_class=HTMLResponse, summary="Operators: present the operator token")
    @page
    async def ops_token(request: Request) -> Response:
        f = await pages.form(request)
        token = f.get("token", "").strip()
        try:
            await pages.apis.call(
                "tasks", "GET", "/v1/signin/messages", token=token, lang=lang_of(request)
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return pages.render(request, "ops.html", status=e.status, error=e.detail, messages=None)
        pages.session(request).roles["operator"] = RoleToken(
            "operator", "operator", token, time.time() + 3600
        )
        return pages.redirect(request, "/ops")

    # -- the admin's and the auditor's pages (jifen.portal.staff) ------------------------
    add_staff_pages(app, pages, page)
    add_record_pages(app, pages, page)
    add_invite_pages(app, pages, page)  # an officer's invitation links; /invite/{token}
    add_honour_pages(app, pages, page)  # /c/{id}/honour, and the volunteer's choice on /me
    add_board_pages(app, pages, page)  # the officer acts on a hazard or wish
    add_publish_pages(app, pages, page)  # the officer publishes the month's menu
    photos = add_photo_pages(app, pages)  # GET /photos/<hex>.jpg; the forms above use it

    # -- errors as pages ----------------------------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path in ("/healthz", "/readyz", "/metrics") or request.url.path.startswith(
            "/docs"
        ):
            return said(request, exc.status_code, str(exc.detail), str(exc.detail))
        key = "not_found" if exc.status_code == 404 else "error"
        return pages.render(
            request, "error.html", status=exc.status_code, detail=text(lang_of(request), key)
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return pages.render(
            request, "error.html", status=404, detail=text(lang_of(request), "not_found")
        )

    return app


PAGE_SIZE = 20
BULK_MAX = 100  # completions one "verify selected" decides (a page shows 20)
POSTER_SHEET = 8  # the cards one A4 sheet of the poster holds
FIGURES_MAX_PAGES = 50  # pages of 1,000 completions a figures page reads at most
FIGURES_KEPT_SECONDS = 10.0


@dataclass
class Pager:
    page: int
    pages: int

    @property
    def prev(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None


def paged(items: list[Any], page_no: int, size: int = PAGE_SIZE) -> tuple[list[Any], Pager]:
    """One page of ``items``: a page stays within the page budget however long the list (the
    APIs answer up to 1,000; a page shows 20)."""
    pages = max(1, -(-len(items) // size))
    page_no = min(max(1, page_no), pages)
    return items[(page_no - 1) * size : page_no * size], Pager(page_no, pages)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")


@dataclass(frozen=True)
class CommunityList:
    """A community's public list with a volunteer's form beside it: where it is (``slug``), the
    API list it shows (``path``, filtered by ``params``), the notice after a post (``done``),
    the template's values from a page of items (``shape``) and the API body from the form
    (``body``: fields, the volunteer's account, the community)."""

    slug: str
    template: str
    path: str
    params: dict[str, str]
    done: str
    shape: Callable[[list[dict[str, Any]]], dict[str, Any]]
    body: Callable[[dict[str, str], str, str], dict[str, Any]]
    report_in: bool = False  # the API takes it only from a member of a community
    photo: bool = False  # the form takes a photo (multipart; evidence_ref)


def _wish_body(f: dict[str, str], account: str, community_id: str) -> dict[str, Any]:
    return {
        "community_id": community_id,
        "kind": "wish",
        "title": f.get("title", "").strip(),
        "description": f.get("description", "").strip(),
        "place": f.get("place", "").strip(),
    }


def _hazard_body(f: dict[str, str], account: str, community_id: str) -> dict[str, Any]:
    kind = f.get("kind", "")
    body: dict[str, Any] = {
        "account_id": account,
        "community_id": community_id,
        "kind": kind if kind in HAZARD_KINDS else "other",
        "text": f.get("text", "").strip(),
    }
    if f.get("place", "").strip():
        body["place"] = {"address": f["place"].strip()}
    return body


def _hazards_shown(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hazards": items,
        "done": sum(h["status"] == "done" for h in items),
        "doing": sum(h["status"] == "in_progress" for h in items),
        "kinds": HAZARD_KINDS,
    }


# what a volunteer may report (the tasks API's HazardKind), in the order the form offers them
HAZARD_KINDS = (
    "stairwell_clutter",
    "sanitation_blind_spot",
    "fire_risk",
    "traffic_hazard",
    "other",
)
# the steps of a wish, in order: each one it has reached is lit on the wall
_STEPS = ("open", "claimed", "in_progress", "done")


WALL = CommunityList(
    slug="wishes",
    template="wishes.html",
    path="/v1/needs",
    params={"kind": "wish"},
    done="posted",
    shape=lambda items: {"wishes": [{**w, "reached": _reached(w)} for w in items]},
    body=_wish_body,
)
HAZARDS = CommunityList(
    slug="hazards",
    template="hazards.html",
    path="/v1/hazards",
    params={},
    done="reported",
    shape=_hazards_shown,
    body=_hazard_body,
    report_in=True,
    photo=True,
)


def _cursor_or_none(value: str | None) -> str | None:
    """A list's next_cursor as the page got it back (the APIs refuse anything else)."""
    return value if value and _CURSOR.fullmatch(value) else None


def _reached(wish: dict[str, Any]) -> list[str]:
    """The steps a wish has passed, from its history (a claim may be skipped)."""
    seen = {h["status"] for h in wish.get("history", [])} | {wish["status"]}
    last = max((i for i, step in enumerate(_STEPS) if step in seen), default=0)
    return [step for i, step in enumerate(_STEPS) if i <= last and (step in seen or i == 0)]


def _id_or_none(value: str | None) -> str | None:
    return value if value and _ID.fullmatch(value) else None


def _queue_url(done: str, community: str | None, *, held: bool = False) -> str:
    return (
        f"/officer/queue?done={done}"
        + (f"&community={community}" if community else "")
        + ("&show=held" if held else "")
    )


def _is_month(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError:
        return False
    return True


_CHECKIN_CODE = re.compile(r"[A-Za-z0-9]{1,16}")


def scan_url(base: str, redemption_id: str, code: str) -> str:
    """The address a voucher's QR code holds: the portal's counter at that voucher (``base``:
    where people reach the portal, JIFEN_PORTAL_PUBLIC_URL)."""
    return f"{base}/merchant/scan?{urlencode({'r': redemption_id, 'code': code})}"


def _local(target: str) -> str:
    """Only a path of this site is followed after sign-in (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/me"
