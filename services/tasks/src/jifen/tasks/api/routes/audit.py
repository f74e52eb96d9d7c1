"""/v1/audit: the auditors' listing of every verified completion, in commit order, to
reconcile against the ledger."""

from __future__ import annotations

from fastapi import APIRouter

from jifen.kernel.pages import Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.tasks.api.deps import Auditor, Conn, Events, Q
from jifen.tasks.api.schemas import AuditCompletion, AuditPage

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=ParsedBodyRoute)


@router.get(
    "/completions",
    response_model=AuditPage,
    summary="Every completion ever verified in your organisation, oldest first (auditor)",
    description="For reconciliation against the ledger: each verified completion must have "
    "exactly one credit, each revoked one exactly one reversal. Page with `cursor` = the "
    "previous `next_cursor`; `next_cursor` is null on the last page. Ordered by verification "
    "commit order, so paging never skips a completion committed later.",
)
async def audit_completions(
    conn: Conn,
    q: Q,
    contracts: Events,
    who: Auditor,
    paging: Paging,
) -> AuditPage:
    (after,) = paging.after(int)
    rows, cursor = paging.cut(
        await conn.fetch(q["audit_completions"], who.org, after or 0, paging.fetch),
        lambda r: (r["verified_seq"],),
    )
    items = [
        AuditCompletion(
            completion_id=r["id"],
            account_id=r["account_id"],
            job_id=r["job_id"],
            points=r["points"],
            status=r["status"],
            verified_event_id=r["verified_event_id"],
            revoked_event_id=r["revoked_event_id"],
            verified_at=r["verified_at"],
            revoked_at=r["revoked_at"],
        )
        for r in rows
    ]
    return AuditPage(items=items, next_cursor=cursor)
