"""What the tasks routes declare the same way, once: who may call (role aliases), the
idempotency key, path ids and list limits, the refusals they document, and the kernel's
``Conn``, ``Q`` and ``Events`` (re-exported so a route imports its dependencies from here).

A route takes what it needs by type, as in the FastAPI project template::

    async def publish_job(body: JobIn, conn: Conn, q: Q, contracts: Events, who: Officer): ...
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, HTTPException, Path, Query, Request

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.deps import Conn, Events, Q, contracts_of, queries_of
from jifen.kernel.i18n import Said
from jifen.kernel.lane import IDEMPOTENCY_KEY
from jifen.tasks.domain.checkin import CheckinRules
from jifen.tasks.sender import Sender, make_sender
from jifen.tasks.settings import TasksSettings

__all__ = [
    "ACTOR_ROLES",
    "REFUSALS",
    "Actor",
    "Admin",
    "AnyMember",
    "Auditor",
    "Claimant",
    "Conn",
    "Events",
    "IdFilter",
    "IdempotencyKey",
    "Officer",
    "PathId",
    "Poster",
    "Q",
    "Reader",
    "acting_for",
    "checkin_rules",
    "contracts_of",
    "queries_of",
]

Officer = Annotated[Principal, require(Role.OFFICER, Role.ADMIN)]
ACTOR_ROLES = frozenset({Role.APP, Role.VOLUNTEER})
Actor = Annotated[Principal, require(*ACTOR_ROLES)]
Reader = Annotated[
    Principal, require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.AUDITOR)
]
Admin = Annotated[Principal, require(Role.ADMIN)]
Auditor = Annotated[Principal, require(Role.AUDITOR)]
# webhooks: an app subscribes for itself; the admin sees and ends all of the organisation's
Subscriber = Annotated[Principal, require(Role.ADMIN, Role.APP)]
# the scheme's figures: its officers and admin, and the unions' auditors
ReportReader = Annotated[Principal, require(Role.OFFICER, Role.ADMIN, Role.AUDITOR)]
Poster = Annotated[Principal, require(Role.OFFICER, Role.ADMIN, Role.APP)]
Claimant = Annotated[
    Principal, require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.MERCHANT)
]
AnyMember = Annotated[
    Principal,
    require(Role.OFFICER, Role.ADMIN, Role.APP, Role.VOLUNTEER, Role.AUDITOR, Role.MERCHANT),
]

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=rf"^{IDEMPOTENCY_KEY.pattern}$",
        description="Unique per completion attempt; repeating it returns the original result.",
    ),
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# an account or community id in the path
PathId = Annotated[str, Path(pattern=ID_PATTERN)]
# an optional filter by account or community id (``community_id: IdFilter = None``)
IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]

REFUSALS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Refused by a rule; `reason` says which"},
    404: {"description": "No such job or completion in your organisation"},
}


def acting_for(who: Principal, account_id: str) -> None:
    """A volunteer acts only for their own account; an app acts for any of its volunteers."""
    if who.role == Role.VOLUNTEER and who.subject != account_id:
        raise HTTPException(
            403,
            Said("志愿者只能为自己的账户操作", "a volunteer may act only for their own account"),
        )


def sender_of(request: Request) -> Sender:
    """The app's sender (sign-in codes, calls), made on first use from its settings."""
    sender: Sender | None = getattr(request.app.state, "sender", None)
    if sender is None:
        sender = request.app.state.sender = make_sender(request.app.state.settings)
    return sender


def checkin_rules(request: Request) -> CheckinRules:
    s: TasksSettings = request.app.state.settings
    return CheckinRules(
        step_seconds=s.checkin_step_seconds,
        max_failures=s.checkin_max_failures,
        window_seconds=s.checkin_failure_window_seconds,
    )
