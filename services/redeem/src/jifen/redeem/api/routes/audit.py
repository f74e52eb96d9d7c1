"""The auditors' feeds: every redemption for reconciliation, and the frozen wallets."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter

from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute
from jifen.redeem.api.deps import Auditor, Conn, Q, Settings
from jifen.redeem.api.schemas import AuditPage, AuditRedemption, FrozenWallet

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=ParsedBodyRoute)


@router.get(
    "/redemptions",
    response_model=AuditPage,
    summary="Every redemption of your organisation, oldest first, for reconciliation",
)
async def audit_redemptions(
    conn: Conn,
    q: Q,
    who: Auditor,
    s: Settings,
    paging: Paging,
) -> AuditPage:
    """Each redemption with the ids of the events that asked the ledger for its debit
    (``placed_event_id``) and refund (``cancelled_event_id``; null until asked — a
    ``cancelling`` one asks once its debit arrives). Those ids are the ledger entries'
    ``cause_event_id``. ``next_cursor`` is null on the last page."""
    at, rid = paging.after(datetime, UUID)
    if at is None:
        at, rid = datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0)
    settle = s.audit_settle_seconds
    rows = await conn.fetch(q["audit_redemptions"], who.org, at, rid, paging.fetch, float(settle))
    page, cursor = paging.cut(rows, lambda r: (r["created_at"], r["id"]))
    items = [
        AuditRedemption(redemption_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"})
        for r in page
    ]
    return AuditPage(items=items, next_cursor=cursor)


@router.get(
    "/frozen-wallets",
    response_model=Page[FrozenWallet],
    summary="Accounts frozen for redemptions: a reversal took them below what was spent",
)
async def frozen_wallets(conn: Conn, q: Q, who: Auditor, paging: Paging) -> Page[FrozenWallet]:
    rows = await conn.fetch(q["frozen_wallets"], who.org, paging.fetch, *paging.after(str))
    return paging.page(
        rows,
        lambda r: (r["account_id"],),
        lambda r: FrozenWallet(
            account_id=r["account_id"],
            ledger_balance=r["ledger_balance"],
            held=r["held"],
            shortfall=r["held"] - r["ledger_balance"],
            since=r["updated_at"],
        ),
    )
