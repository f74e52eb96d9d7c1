"""Intake, the requests that become jobs (``hazards``: hazard reports, report -> task ->
done; ``needs``: residents' micro-wishes and partners' offers).

Every move of a report or a need takes the same steps, in one helper (``move``): lock the
item, check the move, make its job if it becomes one, set its status, record the change."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.commands import JobSpec
from jifen.tasks.domain.intake import HazardStatus, NeedStatus, move_hazard, move_need
from jifen.tasks.handlers.history import record_status
from jifen.tasks.handlers.jobs import insert_job


@dataclass(frozen=True)
class _Kind:
    """How one kind of item is locked, moved and stored."""

    item: str  # its name in the status history
    lock: str  # the query that locks it by (id, org)
    store: str  # the query that sets its status
    missing: tuple[str, str]  # the 404's words, Chinese and English
    move: Callable[[str, str], str]  # the domain's rule: the status it may move to
    values: Callable[..., tuple[Any, ...]]  # the store query's parameters


HAZARD = _Kind(
    item="hazard",
    lock="lock_hazard",
    store="set_hazard",
    missing=("没有隐患报告", "no hazard report"),
    move=lambda now, to: move_hazard(HazardStatus(now), HazardStatus(to)).value,
    values=lambda item_id, status, job_id, duplicate_of=None: (
        item_id,
        status,
        job_id,
        duplicate_of,
    ),
)
NEED = _Kind(
    item="need",
    lock="lock_need",
    store="set_need",
    missing=("没有心愿或供给", "no wish or offer"),
    move=lambda now, to: move_need(NeedStatus(now), NeedStatus(to)).value,
    values=lambda item_id, status, job_id, claimed_by=None: (item_id, status, claimed_by, job_id),
)

# an item-specific refusal before the move; it may name the job the change concerns
Check = Callable[[asyncpg.Record], Awaitable[uuid.UUID | None]]


async def move(
    conn: asyncpg.Connection,
    q: Queries,
    contracts: Contracts,
    kind: _Kind,
    item_id: uuid.UUID,
    to: str,
    *,
    org: str,
    actor: str,
    reason: str,
    job: JobSpec | None = None,
    check: Check | None = None,
    **stored: Any,
) -> asyncpg.Record:
    """Lock the item (404 outside the organisation), run ``check``, check the move is allowed,
    publish ``job`` in the item's community if it becomes one, store the new status (with
    ``stored``), and record the change in the item's history; the caller holds the
    transaction."""
    row = await conn.fetchrow(q[kind.lock], item_id, org)
    if row is None:
        raise NotFound(Said(f"{kind.missing[0]} {item_id}", f"{kind.missing[1]} {item_id}"))
    linked = await check(row) if check is not None else None
    status = kind.move(row["status"], to)
    job_id = None
    if job is not None:
        made = await insert_job(
            conn, q, contracts, org=org, officer=actor, community_id=row["community_id"], job=job
        )
        job_id = linked = made["id"]
    moved = await conn.fetchrow(q[kind.store], *kind.values(item_id, status, job_id, **stored))
    await record_status(conn, q, contracts, org, kind.item, item_id, status, actor, reason, linked)
    return moved
