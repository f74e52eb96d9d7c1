"""The organisation's settings of the redeem service: its fraud window."""

from __future__ import annotations

from fastapi import APIRouter

from jifen.kernel.web import ParsedBodyRoute
from jifen.redeem.api.deps import SMALL_BODY, Anyone, Conn, Officer, Q
from jifen.redeem.api.schemas import OrgSettingsIn, OrgSettingsOut

router = APIRouter(prefix="/v1/settings", tags=["settings"], route_class=ParsedBodyRoute)


@router.get("", response_model=OrgSettingsOut, summary="Your organisation's settings")
async def get_settings(conn: Conn, q: Q, who: Anyone) -> OrgSettingsOut:
    row = await conn.fetchrow(q["get_org_setting"], who.org)
    if row is None:
        return OrgSettingsOut(org_id=who.org, fraud_window_seconds=0, updated_at=None)
    return OrgSettingsOut(**dict(row))


@router.put(
    "", openapi_extra=SMALL_BODY, response_model=OrgSettingsOut, summary="Set the fraud window"
)
async def put_settings(body: OrgSettingsIn, conn: Conn, q: Q, who: Officer) -> OrgSettingsOut:
    row = await conn.fetchrow(q["put_org_setting"], who.org, body.fraud_window_seconds)
    return OrgSettingsOut(**dict(row))
