"""The admin's and the auditor's pages (#20: "Admin and auditor: organisation limits, app
credentials, adjustments with the second admin's approval; checkpoint status and the audit
report").

``/admin`` (the admin): the organisation's limits (tasks ``GET``/``PUT /v1/organisation``), the
app credentials (tasks ``/v1/apps/credentials``: listed, issued — the secret shown once —,
revoked) and the adjustments (points ``/v1/adjustments``: proposed by one admin, approved or
rejected by another; the API refuses the proposer's own decision, and the page shows its
refusal in the person's language). ``/audit`` (the auditor): the latest signed checkpoint,
checked here against the published keys and, by the consistency proof, against the one before
(jifen.portal.ledger), signing one now, and the points service's report for a month
(``GET /v1/reports/points``) with its integrity signals (``GET /v1/signals``).

Every form is the portal's usual one: CSRF first, then the role, then the API as the signed-in
person; a refusal is shown beside the form it answers, with what was typed kept."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.figures import month_or, shift_month, this_month
from jifen.portal.ledger import check
from jifen.portal.texts import Lang, text

if TYPE_CHECKING:
    from jifen.portal.app import Pages

Handler = Callable[..., Awaitable[Response]]

# the organisation's limits the admin sets, in the order the form shows them; the hourly ones
# may be left empty (unset), the others are always set (tasks' OrganisationIn)
LIMITS = (
    "daily_points_officer",
    "daily_points_admin",
    "hourly_completions_officer",
    "hourly_completions_admin",
    "daily_points_per_officer",
    "automatic_job_points",
)
OPTIONAL_LIMITS = frozenset({"hourly_completions_officer", "hourly_completions_admin"})
_INT = re.compile(r"[+-]?\d{1,9}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")
# what one admin page shows, held to the page budget (30 KB) at the longest the APIs allow (a
# reason is up to 500 characters): the credentials, the pending adjustments (the rest a
# "more" link away) and the latest decisions (their reasons cut short)
CREDENTIALS_SHOWN = 10
PENDING_SHOWN = 5
DECIDED_SHOWN = 5
FLAGS_SHOWN = 20
DONE = {"approve": "approved", "reject": "rejected"}  # the notice after a decision


def _lang(request: Request) -> Lang:
    return "en" if request.cookies.get("lang") == "en" else "zh"


def _cursor(value: str | None) -> str | None:
    return value if value and _CURSOR.fullmatch(value) else None


def _integer(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if _INT.fullmatch(raw) else None


def add_staff_pages(app: FastAPI, pages: Pages, page: Callable[[Handler], Handler]) -> None:
    # -- the admin ------------------------------------------------------------------------
    @app.get(
        "/admin", response_class=HTMLResponse, summary="Admin: limits, credentials, adjustments"
    )
    @page
    async def admin_page(
        request: Request,
        done: str | None = None,
        cred_cursor: str | None = None,
        adj_cursor: str | None = None,
    ) -> Response:
        pages.need(request, "admin")
        issued = pages.session(request).take("issued") if done == "issued" else None
        return await _admin(
            request,
            notice=done,
            issued=issued,
            cred_cursor=_cursor(cred_cursor),
            adj_cursor=_cursor(adj_cursor),
        )

    async def _admin(
        request: Request,
        *,
        notice: str | None = None,
        refused: tuple[str, str] | None = None,
        typed: dict[str, str] | None = None,
        status: int = 200,
        issued: dict[str, Any] | None = None,
        cred_cursor: str | None = None,
        adj_cursor: str | None = None,
    ) -> Response:
        """The admin's page; ``refused`` is (which form, the refusal), shown beside that form
        with ``typed`` (what was posted) kept in it."""
        me = pages.need(request, "admin")
        org = await pages.call(request, "tasks", "GET", "/v1/organisation")
        cred_params: dict[str, Any] = {"limit": CREDENTIALS_SHOWN}
        if cred_cursor:
            cred_params["cursor"] = cred_cursor
        creds = await pages.call(
            request, "tasks", "GET", "/v1/apps/credentials", params=cred_params
        )
        adj_params: dict[str, Any] = {"status": "pending", "limit": PENDING_SHOWN}
        if adj_cursor:
            adj_params["cursor"] = adj_cursor
        pending = await pages.call(request, "points", "GET", "/v1/adjustments", params=adj_params)
        recent = await pages.items(
            request, "points", "/v1/adjustments", params={"limit": DECIDED_SHOWN * 3}
        )
        decided = [a for a in recent if a["status"] != "pending"][:DECIDED_SHOWN]
        return pages.render(
            request,
            "admin.html",
            status=status,
            here="/admin",  # the language switch from a refusal (a POST's page) comes back here
            org=org,
            limits=LIMITS,
            optional=OPTIONAL_LIMITS,
            creds=creds["items"],
            creds_next=creds["next_cursor"],
            portal_app=pages.apis.app_id,
            pending=pending["items"],
            pending_next=pending["next_cursor"],
            decided=decided,
            me_subject=me.subject,
            notice=notice,
            refused=refused,
            typed=typed or {},
            issued=issued,
        )

    def _refused(e: ApiError) -> str:
        if e.status >= 500:
            raise e
        return e.detail

    @app.post("/admin/limits", summary="Set the organisation's limits (admin)")
    @page
    async def set_limits(request: Request) -> Response:
        f = await pages.form(request)
        pages.need(request, "admin")
        lang = _lang(request)
        values: dict[str, int | None] = {}
        for name in LIMITS:
            raw = f.get(name, "").strip()
            if not raw and name in OPTIONAL_LIMITS:
                values[name] = None
                continue
            value = _integer(raw)
            if value is None:
                said = text(lang, "not_integer", field=text(lang, f"lim_{name}"))
                return await _admin(request, refused=("limits", said), typed=f, status=422)
            values[name] = value
        current = await pages.call(request, "tasks", "GET", "/v1/organisation")
        # PUT sets the whole: the name and timezone as they are, the limits as typed
        body = {"name": current["name"], "timezone": current["timezone"], **values}
        try:
            await pages.call(request, "tasks", "PUT", "/v1/organisation", json=body)
        except ApiError as e:
            return await _admin(request, refused=("limits", _refused(e)), typed=f, status=e.status)
        return pages.redirect(request, "/admin?done=limits")

    @app.post("/admin/credentials", summary="Issue an app credential (admin; shown once)")
    @page
    async def issue_credential(request: Request) -> Response:
        f = await pages.form(request)
        pages.need(request, "admin")
        lang = _lang(request)
        per_minute = _integer(f.get("writes_per_minute", "") or "600")
        if per_minute is None:
            said = text(lang, "not_integer", field=text(lang, "cred_writes"))
            return await _admin(request, refused=("credentials", said), typed=f, status=422)
        try:
            made = await pages.call(
                request,
                "tasks",
                "POST",
                "/v1/apps/credentials",
                json={"app_id": f.get("app_id", "").strip(), "writes_per_minute": per_minute},
            )
        except ApiError as e:
            return await _admin(
                request, refused=("credentials", _refused(e)), typed=f, status=e.status
            )
        # the secret is shown once: on the page this redirect leads to, then forgotten
        pages.session(request).flash["issued"] = {
            "id": made["id"],
            "app_id": made["app_id"],
            "secret": made["secret"],
        }
        return pages.redirect(request, "/admin?done=issued")

    @app.post("/admin/credentials/{credential_id}/revoke", summary="Revoke an app credential")
    @page
    async def revoke_credential(request: Request, credential_id: uuid.UUID) -> Response:
        await pages.form(request)
        pages.need(request, "admin")
        try:
            await pages.call(
                request, "tasks", "POST", f"/v1/apps/credentials/{credential_id}/revoke"
            )
        except ApiError as e:
            return await _admin(request, refused=("credentials", _refused(e)), status=e.status)
        return pages.redirect(request, "/admin?done=revoked")

    @app.post("/admin/adjustments", summary="Propose an adjustment (admin; another approves)")
    @page
    async def propose_adjustment(request: Request) -> Response:
        f = await pages.form(request)
        pages.need(request, "admin")
        lang = _lang(request)
        amount = _integer(f.get("amount", ""))
        if amount is None:
            said = text(lang, "not_integer", field=text(lang, "adj_amount"))
            return await _admin(request, refused=("propose", said), typed=f, status=422)
        try:
            await pages.call(
                request,
                "points",
                "POST",
                "/v1/adjustments",
                json={
                    "account_id": f.get("account_id", "").strip(),
                    "amount": amount,
                    "reason": f.get("reason", "").strip(),
                },
            )
        except ApiError as e:
            return await _admin(request, refused=("propose", _refused(e)), typed=f, status=e.status)
        return pages.redirect(request, "/admin?done=proposed")

    async def _decide(request: Request, adjustment_id: uuid.UUID, decision: str) -> Response:
        f = await pages.form(request)
        pages.need(request, "admin")
        note = f.get("note", "")
        try:
            await pages.call(
                request,
                "points",
                "POST",
                f"/v1/adjustments/{adjustment_id}/{decision}",
                json={"note": note.strip()},
            )
        except ApiError as e:
            return await _admin(
                request,
                refused=(f"adj-{adjustment_id}", _refused(e)),
                typed={f"note-{adjustment_id}": note},
                status=e.status,
            )
        return pages.redirect(request, f"/admin?done={DONE[decision]}")

    @app.post("/admin/adjustments/{adjustment_id}/approve", summary="Approve (the second admin)")
    @page
    async def approve_adjustment(request: Request, adjustment_id: uuid.UUID) -> Response:
        return await _decide(request, adjustment_id, "approve")

    @app.post("/admin/adjustments/{adjustment_id}/reject", summary="Reject (the second admin)")
    @page
    async def reject_adjustment(request: Request, adjustment_id: uuid.UUID) -> Response:
        return await _decide(request, adjustment_id, "reject")

    # -- the auditor ----------------------------------------------------------------------
    @app.get("/audit", response_class=HTMLResponse, summary="Auditor: checkpoint and report")
    @page
    async def audit_page(
        request: Request, month: str | None = None, done: str | None = None
    ) -> Response:
        pages.need(request, "auditor")
        return await _audit(request, month_or(month, this_month()), notice=done)

    async def _audit(
        request: Request,
        month: str,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        pages.need(request, "auditor")
        latest: dict[str, Any] | None
        try:
            latest = await pages.call(request, "points", "GET", "/v1/audit/checkpoints/latest")
        except ApiError as e:
            if e.status != 404:  # none signed yet
                raise
            latest = None
        previous, proof = None, None
        if latest is not None:
            newest = await pages.items(
                request, "points", "/v1/audit/checkpoints", params={"limit": 2}
            )
            previous = next((c for c in newest if c["tree_size"] < latest["tree_size"]), None)
            if previous is not None:
                proof = (
                    await pages.call(
                        request,
                        "points",
                        "GET",
                        "/v1/audit/consistency",
                        params={"first": previous["tree_size"], "second": latest["tree_size"]},
                    )
                )["proof"]
        keys = {
            k["key_id"]: k["public_key"]
            for k in await pages.items(request, "points", "/v1/audit/keys", params={"limit": 1000})
        }
        report = await pages.call(
            request, "points", "GET", "/v1/reports/points", params={"month": month}
        )
        signals = await pages.call(request, "points", "GET", "/v1/signals")
        return pages.render(
            request,
            "audit.html",
            status=status,
            here=quote(f"/audit?month={month}", safe="/"),
            chk=check(latest, previous, keys, proof),
            report=report,
            flags=signals["flags"][:FLAGS_SHOWN],
            flags_more=max(0, len(signals["flags"]) - FLAGS_SHOWN),
            month=month,
            prev=shift_month(month, -1),
            next=shift_month(month, 1),
            notice=notice,
            error=error,
        )

    @app.post("/audit/checkpoints", summary="Sign a checkpoint of the ledger now (auditor)")
    @page
    async def sign_checkpoint(request: Request) -> Response:
        await pages.form(request)
        pages.need(request, "auditor")
        try:
            await pages.call(request, "points", "POST", "/v1/audit/checkpoints")
        except ApiError as e:
            return await _audit(request, this_month(), error=_refused(e), status=e.status)
        return pages.redirect(request, "/audit?done=signed")
