"""Integrity signals, read-only: the flags the audit report and the alert rules use."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.deps import Conn, Q
from jifen.points.db.signals import current_flags
from jifen.points.domain.signals import Thresholds

Reader = Annotated[Principal, require(Role.OFFICER, Role.AUDITOR, Role.ADMIN)]
router = APIRouter(prefix="/v1/signals", tags=["signals"])


class FlagOut(BaseModel):
    signal: str = Field(examples=["volunteer_completions_per_hour"])
    community_id: str
    subject: str = Field(description="A volunteer, an 'officer|volunteer' pair, or a community.")
    window_start: datetime
    value: float
    threshold: float
    detail: str


class Signals(BaseModel):
    org_id: str
    thresholds: dict[str, float]
    flags: list[FlagOut]


@router.get("", response_model=Signals, summary="Current integrity flags of your organisation")
async def signals(
    conn: Conn,
    q: Q,
    who: Reader,
    hours: Annotated[
        int, Query(ge=1, le=24 * 31, description="Windows started this recently")
    ] = 24,
) -> Signals:
    thresholds = Thresholds()
    flags = await current_flags(conn, q, who.org, thresholds, timedelta(hours=hours))
    return Signals(
        org_id=who.org,
        thresholds={k: float(v) for k, v in thresholds.__dict__.items()},
        flags=[FlagOut(**{k: getattr(f, k) for k in FlagOut.model_fields}) for f in flags],
    )
