"""The officer acts on hazards and wishes from the board (#20: "a board for hazards and wishes
from report to done"): one page per item, ``/officer/hazards/{id}`` and ``/officer/needs/{id}``.

Each page shows the item, its history and a form for every move its status allows (the tasks
domain's: a reported hazard is triaged into a job, merged into an earlier report or closed;
one being fixed is closed; an open wish or offer is claimed for someone, turned into a job or
closed; a claimed one turned into a job or closed; one being done closed). Each form posts to
the tasks API as the signed-in officer (``POST /v1/hazards/{id}/triage|merge|close``,
``POST /v1/needs/{id}/claim|job|close``); its refusal — the item moved on meanwhile, a reason
too short — is shown beside that form in the person's language, the form kept with what was
typed even when the item's new status would no longer offer it. A photo the portal kept with a
report (``portal-photo/<sha256>.jpg``) is shown from ``/photos/``.

A job's fields (start and end typed in the organisation's local time) are read as the menu's
are (``jifen.portal.publish.read_job``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.publish import VERIFICATIONS, Read, job_choices, local_input, read_job
from jifen.portal.texts import Lang

if TYPE_CHECKING:
    from jifen.portal.app import Pages

Handler = Callable[..., Awaitable[Response]]

# the forms each status offers (the tasks domain's moves: jifen.tasks.domain.intake)
HAZARD_ACTIONS: dict[str, tuple[str, ...]] = {
    "reported": ("triage", "merge", "close"),
    "in_progress": ("close",),
}
NEED_ACTIONS: dict[str, tuple[str, ...]] = {
    "open": ("claim", "job", "close"),
    "claimed": ("job", "close"),
    "in_progress": ("close",),
}
DONE = {
    "triage": "triaged",
    "merge": "merged",
    "close": "closed",
    "claim": "claimed",
    "job": "job",
}
MERGE_CHOICES = 20  # the community's other reports a merge form offers
_PHOTO = re.compile(r"portal-photo/([0-9a-f]{64})\.jpg")


def photo_path(ref: str | None) -> str:
    """Where the portal serves a photo it kept (``portal-photo/<sha256>.jpg``), else ""."""
    found = _PHOTO.fullmatch(ref or "")
    return f"/photos/{found.group(1)}.jpg" if found else ""


def offered(actions: dict[str, tuple[str, ...]], status: str, refused: str | None) -> list[str]:
    """The forms a page shows: those its status allows, and the one just refused (kept with
    what was typed, though the item may have moved on)."""
    shown = list(actions.get(status, ()))
    if refused and refused not in shown:
        shown.append(refused)
    return shown


def _lang(request: Request) -> Lang:
    return "en" if request.cookies.get("lang") == "en" else "zh"


def add_board_pages(app: FastAPI, pages: Pages, page: Callable[[Handler], Handler]) -> None:
    async def _item_page(
        request: Request,
        kind: str,
        item_id: uuid.UUID,
        *,
        notice: str | None = None,
        refused: tuple[str, str] | None = None,
        typed: dict[str, str] | None = None,
        bad: set[str] | None = None,
        status: int = 200,
    ) -> Response:
        pages.need(request, "officer", "admin")
        path = "/v1/hazards" if kind == "hazard" else "/v1/needs"
        item = await pages.call(request, "tasks", "GET", f"{path}/{item_id}")
        tz, categories = await job_choices(pages, request)
        forms = offered(
            HAZARD_ACTIONS if kind == "hazard" else NEED_ACTIONS,
            item["status"],
            refused[0] if refused else None,
        )
        others: list[dict[str, Any]] = []
        if "merge" in forms:
            others = [
                h
                for h in await pages.items(
                    request,
                    "tasks",
                    "/v1/hazards",
                    params={"community_id": item["community_id"], "limit": MERGE_CHOICES + 1},
                )
                if h["id"] != item["id"] and h["status"] != "duplicate"
            ][:MERGE_CHOICES]
        # a job's fields start from what the item says; what was posted overrides them
        typed = {
            "category": "hazard_patrol" if kind == "hazard" else item.get("category") or "",
            "place": item.get("place_address") or item.get("place") or "",
            "title": item.get("title", ""),
            "starts": local_input(item.get("wanted_from"), tz),
            "ends": local_input(item.get("wanted_until"), tz),
            **(typed or {}),
        }
        return pages.render(
            request,
            f"officer_{kind}.html",
            status=status,
            here=f"/officer/{kind}s/{item_id}",
            item=item,
            photo=photo_path(item.get("evidence_ref") or item.get("reference")),
            forms=forms,
            others=others,
            categories=categories,
            verifications=VERIFICATIONS,
            tz=tz.key,
            notice=notice,
            refused=refused,
            typed=typed,
            bad=bad or set(),
        )

    async def _act(request: Request, kind: str, item_id: uuid.UUID, action: str) -> Response:
        f = await pages.form(request)
        pages.need(request, "officer", "admin")
        lang = _lang(request)
        reason = f.get("reason", "").strip()
        body: dict[str, Any]
        if action in ("triage", "job"):
            tz, _ = await job_choices(pages, request)
            read = Read()
            job = read_job(f, "", tz, lang, None, read)
            if job is None:
                return await _item_page(
                    request,
                    kind,
                    item_id,
                    refused=(action, ("；" if lang == "zh" else "; ").join(read.errors)),
                    typed=f,
                    bad=read.bad,
                    status=422,
                )
            body = {"job": job, "reason": reason}
        elif action == "merge":
            body = {"duplicate_of": f.get("duplicate_of", "").strip(), "reason": reason}
        elif action == "claim":
            body = {"claimed_by": f.get("claimed_by", "").strip()}
        else:
            body = {"reason": reason}
        path = "/v1/hazards" if kind == "hazard" else "/v1/needs"
        try:
            await pages.call(request, "tasks", "POST", f"{path}/{item_id}/{action}", json=body)
        except ApiError as e:
            if e.status >= 500:
                raise
            # an item of another organisation is not found again here: a 404 page, no form
            return await _item_page(
                request,
                kind,
                item_id,
                refused=(action, e.detail),
                typed=f,
                status=e.status,
            )
        return pages.redirect(request, f"/officer/{kind}s/{item_id}?done={DONE[action]}")

    # -- hazards ---------------------------------------------------------------------------
    @app.get(
        "/officer/hazards/{hazard_id}",
        response_class=HTMLResponse,
        summary="A hazard report: its history, triage, merge or close it (officer)",
    )
    @page
    async def hazard_page(
        request: Request, hazard_id: uuid.UUID, done: str | None = None
    ) -> Response:
        return await _item_page(request, "hazard", hazard_id, notice=done)

    @app.post("/officer/hazards/{hazard_id}/triage", summary="Triage a hazard into a job")
    @page
    async def triage(request: Request, hazard_id: uuid.UUID) -> Response:
        return await _act(request, "hazard", hazard_id, "triage")

    @app.post("/officer/hazards/{hazard_id}/merge", summary="Merge a hazard into an earlier one")
    @page
    async def merge(request: Request, hazard_id: uuid.UUID) -> Response:
        return await _act(request, "hazard", hazard_id, "merge")

    @app.post("/officer/hazards/{hazard_id}/close", summary="Close a hazard with a reason")
    @page
    async def close_hazard(request: Request, hazard_id: uuid.UUID) -> Response:
        return await _act(request, "hazard", hazard_id, "close")

    # -- wishes and offers -------------------------------------------------------------------
    @app.get(
        "/officer/needs/{need_id}",
        response_class=HTMLResponse,
        summary="A wish or offer: its history, claim it, make it a job or close it (officer)",
    )
    @page
    async def need_page(request: Request, need_id: uuid.UUID, done: str | None = None) -> Response:
        return await _item_page(request, "need", need_id, notice=done)

    @app.post("/officer/needs/{need_id}/claim", summary="Claim a wish for someone")
    @page
    async def claim(request: Request, need_id: uuid.UUID) -> Response:
        return await _act(request, "need", need_id, "claim")

    @app.post("/officer/needs/{need_id}/job", summary="Turn a wish into a job")
    @page
    async def to_job(request: Request, need_id: uuid.UUID) -> Response:
        return await _act(request, "need", need_id, "job")

    @app.post("/officer/needs/{need_id}/close", summary="Close a wish with a reason")
    @page
    async def close_need(request: Request, need_id: uuid.UUID) -> Response:
        return await _act(request, "need", need_id, "close")
