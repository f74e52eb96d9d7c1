"""What the redeem routes take by type: the kernel's connection, queries and contracts, the
service's settings, who may call each route, and the bounds every write shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.deps import Conn, Events, Q, contracts_of, queries_of
from jifen.kernel.lane import IDEMPOTENCY_KEY
from jifen.kernel.web import max_body
from jifen.redeem.settings import RedeemSettings

__all__ = [
    "MEMBER_ROLES",
    "SMALL_BODY",
    "Anyone",
    "Auditor",
    "Canceller",
    "Conn",
    "Events",
    "IdempotencyKey",
    "Lister",
    "Member",
    "Merchant",
    "Officer",
    "Q",
    "ReportReader",
    "Settings",
    "WalletReader",
    "contracts_of",
    "queries_of",
]


async def get_settings(request: Request) -> RedeemSettings:
    """``async def``: a plain ``def`` dependency would run in a worker thread."""
    s: RedeemSettings = request.app.state.settings
    return s


# the service's settings, as the lifespan put them on app.state
Settings = Annotated[RedeemSettings, Depends(get_settings)]

# who may call: one alias per set of roles a route admits
Lister = Annotated[Principal, require(Role.MERCHANT, Role.OFFICER, Role.ADMIN)]
MEMBER_ROLES = frozenset({Role.VOLUNTEER, Role.APP})
Member = Annotated[Principal, require(*MEMBER_ROLES)]
Anyone = Annotated[
    Principal,
    require(Role.VOLUNTEER, Role.APP, Role.MERCHANT, Role.OFFICER, Role.ADMIN, Role.AUDITOR),
]
Officer = Annotated[Principal, require(Role.OFFICER, Role.ADMIN)]
Merchant = Annotated[Principal, require(Role.MERCHANT)]
Canceller = Annotated[
    Principal, require(Role.VOLUNTEER, Role.APP, Role.MERCHANT, Role.OFFICER, Role.ADMIN)
]
Auditor = Annotated[Principal, require(Role.AUDITOR)]
# the scheme's figures: its officers and admin, and the unions' auditors
ReportReader = Annotated[Principal, require(Role.OFFICER, Role.ADMIN, Role.AUDITOR)]
WalletReader = Annotated[Principal, require(Role.VOLUNTEER, Role.APP, Role.OFFICER, Role.ADMIN)]

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=rf"^{IDEMPOTENCY_KEY.pattern}$",
        description="Unique per redemption attempt; repeating it returns the original.",
    ),
]

# every write here takes a small JSON document: bounded well below the global 256 KiB
SMALL_BODY = max_body(16 * 1024)
