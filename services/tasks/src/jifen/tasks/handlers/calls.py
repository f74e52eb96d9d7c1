"""Calls to volunteers (issue 21, part 5): an officer mobilises a community, a volunteer asks
the others of their communities for help; each recipient is told through the sender, answers
available or not, and the caller reads the roll-call."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from jifen.kernel.db import Queries
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.tasks.domain.calls import (
    Answer,
    check_help_allowed,
    check_open,
    help_text,
    mobilisation_text,
    reminder_text,
)
from jifen.tasks.domain.jobs import IdempotencyKeyReused, no_job
from jifen.tasks.handlers.organisation import check_community, check_member_anywhere
from jifen.tasks.sender import Sender, SenderUnavailable

log = logging.getLogger(__name__)


def no_call(call_id: uuid.UUID) -> NotFound:
    return NotFound(Said(f"没有召集 {call_id}", f"no call {call_id}"))


async def _fan_out(
    conn: asyncpg.Connection,
    q: Queries,
    sender: Sender,
    *,
    org: str,
    call_id: uuid.UUID,
    recipients: list[asyncpg.Record],
    text: str,
) -> None:
    for r in recipients:
        notified = None
        if r["phone"] is not None:
            try:
                await sender.send(conn, q, org=org, to=r["phone"], text=text)
                notified = datetime.now(UTC)
            except SenderUnavailable:  # the call still lists them; the app shows it
                log.warning("call %s: the sender could not reach %s", call_id, r["account_id"])
        await conn.execute(q["insert_recipient"], call_id, r["account_id"], r["phone"], notified)


async def _open_call(
    conn: asyncpg.Connection,
    q: Queries,
    sender: Sender,
    *,
    org: str,
    kind: str,
    community_id: str | None,
    job_id: uuid.UUID | None,
    message: str,
    by: str,
    closes_at: datetime,
    recipients: list[asyncpg.Record],
    text: Callable[[str, datetime, str | None], str],
    key: str | None,
) -> asyncpg.Record:
    """Store the call and tell each recipient ``text(organisation name, closes_at, its
    timezone)``; the
    caller holds the transaction (and the lock on ``key``, checked by :func:`_sent_before`)."""
    call = await conn.fetchrow(
        q["insert_call"], uuid.uuid4(), org, kind, community_id, job_id, message, by, closes_at,
        key,
    )  # fmt: skip
    clock = await conn.fetchrow(q["org_clock"], org)
    await _fan_out(
        conn,
        q,
        sender,
        org=org,
        call_id=call["id"],
        recipients=recipients,
        text=text(clock["name"], call["closes_at"], clock["timezone"]),
    )
    return call


async def _sent_before(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    by: str,
    key: str | None,
    kind: str,
    community_id: str | None,
    job_id: uuid.UUID | None,
    message: str,
) -> asyncpg.Record | None:
    """The call ``by`` already made with this Idempotency-Key (None: none, or no key). The
    same key for another call is refused: it would tell people one thing and answer another."""
    if key is None:
        return None
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"call:{org}:{by}:{key}")
    call = await conn.fetchrow(q["call_by_key"], org, by, key)
    asked = (kind, community_id, job_id, message)
    if (
        call is not None
        and tuple(call[k] for k in ("kind", "community_id", "job_id", "message")) != asked
    ):
        raise IdempotencyKeyReused(
            Said(
                f"Idempotency-Key {key!r} 已用于另一次召集 {call['id']}",
                f"Idempotency-Key {key!r} was used for another call, {call['id']}",
            ),
            call_id=str(call["id"]),
        )
    return call


async def mobilise(
    conn: asyncpg.Connection,
    q: Queries,
    sender: Sender,
    *,
    org: str,
    officer: str,
    community_id: str,
    message: str,
    job_id: uuid.UUID | None,
    open_for: timedelta,
    key: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """The call, and whether it is new (False: made before with this Idempotency-Key)."""
    now = datetime.now(UTC)
    async with conn.transaction():
        await check_community(conn, q, org, community_id)
        before = await _sent_before(
            conn, q, org=org, by=officer, key=key, kind="mobilisation",
            community_id=community_id, job_id=job_id, message=message,
        )  # fmt: skip
        if before is not None:
            return before, False
        if job_id is not None and await conn.fetchrow(q["get_job"], job_id, org) is None:
            raise no_job(job_id)
        return await _open_call(
            conn, q, sender, org=org, kind="mobilisation", community_id=community_id,
            job_id=job_id, message=message, by=officer, closes_at=now + open_for,
            recipients=await conn.fetch(q["community_recipients"], org, community_id),
            text=lambda name, closes_at, tz: mobilisation_text(name, message, closes_at, tz),
            key=key,
        ), True  # fmt: skip


async def ask_for_help(
    conn: asyncpg.Connection,
    q: Queries,
    sender: Sender,
    *,
    org: str,
    account_id: str,
    message: str,
    open_for: timedelta,
    key: str | None = None,
) -> tuple[asyncpg.Record, bool]:
    """The call, and whether it is new (False: made before with this Idempotency-Key)."""
    now = datetime.now(UTC)
    async with conn.transaction():
        await check_member_anywhere(conn, q, org, account_id)
        before = await _sent_before(
            conn, q, org=org, by=account_id, key=key, kind="help", community_id=None,
            job_id=None, message=message,
        )  # fmt: skip
        if before is not None:
            return before, False
        # one at a time per volunteer: the advisory lock makes the check and the insert one
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"help:{org}:{account_id}")
        check_help_allowed(await conn.fetchval(q["last_help_by"], org, account_id), now)
        return await _open_call(
            conn, q, sender, org=org, kind="help", community_id=None, job_id=None,
            message=message, by=account_id, closes_at=now + open_for,
            recipients=await conn.fetch(q["help_recipients"], org, account_id),
            text=lambda name, _closes_at, _tz: help_text(name, account_id, message), key=key,
        ), True  # fmt: skip


async def answer_call(
    conn: asyncpg.Connection,
    q: Queries,
    *,
    org: str,
    call_id: uuid.UUID,
    account_id: str,
    answer: Answer,
    note: str,
) -> asyncpg.Record:
    call = await conn.fetchrow(q["get_call"], call_id, org)
    if call is None:
        raise no_call(call_id)
    clock = await conn.fetchrow(q["org_clock"], org)
    check_open(call["closes_at"], datetime.now(UTC), clock["timezone"])
    row = await conn.fetchrow(q["answer_call"], call_id, account_id, answer.value, note)
    if row is None:  # not one of its recipients: as if there were no such call
        raise no_call(call_id)
    return row


async def remind_claims(
    conn: asyncpg.Connection, q: Queries, sender: Sender, *, lead: timedelta, batch: int = 200
) -> int:
    """Remind each volunteer holding a place in a job that starts within ``lead`` (once per
    claim, whichever worker sends it); how many claims were due. One with no phone on
    record is marked reminded without a message (their app lists their claims)."""
    async with conn.transaction():
        due = await conn.fetch(q["claims_to_remind"], lead.total_seconds(), batch)
        clocks: dict[str, asyncpg.Record] = {}
        for c in due:
            if c["org_id"] not in clocks:
                clocks[c["org_id"]] = await conn.fetchrow(q["org_clock"], c["org_id"])
            phone = c["phone"]
            if phone is not None:
                clock = clocks[c["org_id"]]
                text = reminder_text(
                    clock["name"], c["title"], c["starts_at"], c["place_address"], clock["timezone"]
                )
                try:
                    await sender.send(conn, q, org=c["org_id"], to=phone, text=text)
                except SenderUnavailable:  # not marked: the next pass tries again
                    log.warning("claim %s: the sender could not reach %s", c["claim_id"], phone)
                    continue
            await conn.execute(
                q["insert_claim_reminder"], c["claim_id"], c["org_id"], c["account_id"], phone
            )
    return len(due)
