"""The auditors' feeds: every redemption for reconciliation, and the frozen wallets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query

from jifen.kernel.i18n import Said
from jifen.kernel.web import ParsedBodyRoute
from jifen.redeem.api.deps import Auditor, Conn, Q, Settings
from jifen.redeem.api.schemas import AuditPage, AuditRedemption, FrozenWallet

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=ParsedBodyRoute)


def encode_cursor(created_at: datetime, redemption_id: UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{redemption_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, rid = raw.split("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at, UUID(rid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(
            422, Said(f"游标 {cursor!r} 格式不对：{exc}", f"malformed cursor {cursor!r}: {exc}")
        ) from None


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
    after: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> AuditPage:
    """Each redemption with the ids of the events that asked the ledger for its debit
    (``placed_event_id``) and refund (``cancelled_event_id``; null until asked — a
    ``cancelling`` one asks once its debit arrives). Those ids are the ledger entries'
    ``cause_event_id``. ``next_cursor`` is null on the last page."""
    at, rid = decode_cursor(after) if after else (datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0))
    settle = s.audit_settle_seconds
    rows = await conn.fetch(q["audit_redemptions"], who.org, at, rid, limit, float(settle))
    items = [
        AuditRedemption(redemption_id=r["id"], **{k: r[k] for k in r.keys() if k != "id"})
        for r in rows
    ]
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
    return AuditPage(items=items, next_cursor=cursor)


@router.get(
    "/frozen-wallets",
    response_model=list[FrozenWallet],
    summary="Accounts frozen for redemptions: a reversal took them below what was spent",
)
async def frozen_wallets(
    conn: Conn, q: Q, who: Auditor, limit: Annotated[int, Query(ge=1, le=1000)] = 500
) -> list[FrozenWallet]:
    rows = await conn.fetch(q["frozen_wallets"], who.org, limit)
    return [
        FrozenWallet(
            account_id=r["account_id"],
            ledger_balance=r["ledger_balance"],
            held=r["held"],
            shortfall=r["held"] - r["ledger_balance"],
            since=r["updated_at"],
        )
        for r in rows
    ]
