"""Appending to the ledger inside the caller's transaction: the one write path for entries.

Used by the ledger worker (a batch of events) and by approved adjustments (one entry), so
every entry — whatever caused it — is deduplicated, checked, chained and announced alike.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, envelope, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.outbox import enqueue_many
from jifen.points.domain.ledger import (
    Entry,
    Head,
    Kind,
    Plan,
    Posting,
    account_key,
    plan_batch,
)

SOURCE = "/jifen/points"
LEDGER_COLUMNS = [
    "id",
    "account_id",
    "account_seq",
    "kind",
    "amount",
    "balance_after",
    "org_id",
    "category",
    "cause_event_id",
    "cause_type",
    "job_id",
    "completion_id",
    "redemption_id",
    "occurred_at",
    "recorded_at",
    "prev_hash",
    "entry_hash",
    "reward_id",
]


async def append_postings(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, postings: list[Posting]
) -> tuple[Plan, list[int]]:
    """Plan and append ``postings`` (in their order) in the open transaction of ``conn``.

    A ledger account is (org_id, account_id): each posting moves the chain and balance of its
    own organisation's account only. Row locks on the accounts' chain heads (taken in key
    order, so two writers never deadlock) serialise two writers on one account (a worker
    during a rebalance, an adjustment), so chains never fork; the dedupe and rule checks run
    after the locks are held, on committed data.
    """
    if not postings:
        return Plan(entries=[], heads={}, duplicates=[], refused=[]), []
    keys = sorted({(p.org_id, p.account_id) for p in postings})
    orgs, accounts = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(q["ensure_accounts"], orgs, accounts)
    heads = {
        (r["org_id"], r["account_id"]): Head(
            r["account_id"],
            r["seq"],
            r["balance"],
            r["earned"],
            r["spent"],
            r["head_hash"],
            r["org_id"],
        )
        for r in await conn.fetch(q["lock_accounts"], orgs, accounts)
    }
    event_ids = list({p.event_id for p in postings})
    applied = {r["event_id"] for r in await conn.fetch(q["applied_event_ids"], event_ids)}
    refs = {
        (r["ref_kind"], r["ref_id"], Kind(r["kind"]))
        for r in await conn.fetch(
            q["existing_refs"],
            list({p.completion_id for p in postings if p.completion_id}),
            list({p.redemption_id for p in postings if p.redemption_id}),
        )
    }
    plan = plan_batch(postings, heads, applied, refs)
    if plan.duplicates:
        await announce_again(conn, q, contracts, [p.event_id for p in plan.duplicates])
    if not plan.entries:
        return plan, []
    recorded_at = datetime.now(UTC)
    recorded_text = isoformat(recorded_at)
    ids = [r["id"] for r in await conn.fetch(q["next_entry_ids"], len(plan.entries))]
    await conn.copy_records_to_table(
        "ledger_entry",
        records=[_row(i, e, recorded_at) for i, e in zip(ids, plan.entries, strict=True)],
        columns=LEDGER_COLUMNS,
    )
    changed = [plan.heads[k] for k in sorted({account_key(e.posting) for e in plan.entries})]
    await conn.execute(
        q["update_heads"],
        [h.org_id for h in changed],
        [h.account_id for h in changed],
        [h.seq for h in changed],
        [h.balance for h in changed],
        [h.earned for h in changed],
        [h.spent for h in changed],
        [h.hash for h in changed],
    )
    events = [
        ledger_event_unchecked(i, e, recorded_text) for i, e in zip(ids, plan.entries, strict=True)
    ]
    check_sample(contracts, events)
    await enqueue_many(conn, [(topics.POINTS_LEDGER, ev["subject"], ev) for ev in events])
    return plan, ids


def check_sample(contracts: Contracts, events: list[dict[str, Any]]) -> None:
    """Validate in full the first ledger event of each cause type in the batch.

    The others are built by the same code from postings of the same kind, whose fields the
    incoming contracts constrain at least as tightly as ``entry.appended`` does (proved by
    tests/unit/test_ingest_ledger_events.py), so validating each one again cost ~16% of the
    worker's CPU and could not fail where the sample passes. A wrong sample raises
    ContractViolation and rolls the batch back, as full validation did.
    """
    seen: set[str] = set()
    for ev in events:
        cause = ev["data"]["cause_type"]
        if cause not in seen:
            seen.add(cause)
            contracts.validate(ev)


async def announce_again(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, cause_event_ids: list[str]
) -> None:
    """Publish again the ledger events of entries whose cause arrived a second time.

    A cause is sent again when its sender did not hear back (tasks republishes an uncredited
    completion, redeem a placed redemption without its debit), e.g. after a broker that forgot
    its topics let a consumer skip the first announcement. The event keeps its id, so a
    consumer that did apply it ignores it; one that missed it applies it now.
    """
    rows = await conn.fetch(q["entries_by_cause"], cause_event_ids)
    await enqueue_many(
        conn,
        [
            (topics.POINTS_LEDGER, r["account_id"], ledger_event_from_row(contracts, r))
            for r in rows
        ],
    )


# the entry.appended data fields a ledger_entry row holds under the same names
_ROW_FIELDS = (
    "account_id", "account_seq", "kind", "amount", "balance_after", "org_id", "category",
    "cause_event_id", "cause_type", "job_id", "completion_id", "redemption_id", "entry_hash",
)  # fmt: skip


def ledger_event_from_row(contracts: Contracts, r: Any) -> dict[str, Any]:
    """The entry's event again, from its stored row (validated: this path is rare)."""
    data = {k: r[k] for k in _ROW_FIELDS}
    data["entry_id"] = r["id"]
    data["occurred_at"] = isoformat(r["occurred_at"])
    data["recorded_at"] = isoformat(r["recorded_at"])
    return contracts.new_event(
        "jifen.points.entry.appended.v1",
        source=SOURCE,
        subject=r["account_id"],
        event_id=uuid.UUID(ledger_event_id(r["cause_event_id"])),
        data=data,
    )


_LEDGER_NS = uuid.NAMESPACE_URL.bytes


def ledger_event_id(cause_event_id: str) -> str:
    """``str(uuid5(NAMESPACE_URL, "jifen:ledger-entry:<cause>"))`` without building UUID objects
    (a third of the cost; tests/unit/test_ingest_ledger_events.py checks they agree)."""
    digest = bytearray(
        hashlib.sha1(  # noqa: S324 - UUID version 5 is defined on SHA-1
            _LEDGER_NS + f"jifen:ledger-entry:{cause_event_id}".encode()
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ledger_event_unchecked(entry_id: int, e: Entry, recorded_text: str) -> dict[str, Any]:
    """The ``entry.appended`` event of ``e``, not validated here (see :func:`check_sample`),
    timed ``recorded_text``."""
    p = e.posting
    return envelope(
        "jifen.points.entry.appended.v1",
        source=SOURCE,
        subject=p.account_id,
        event_id=ledger_event_id(p.event_id),
        time=recorded_text,
        data={
            "entry_id": entry_id,
            "account_id": p.account_id,
            "account_seq": e.account_seq,
            "kind": p.kind.value,
            "amount": p.amount,
            "balance_after": e.balance_after,
            "org_id": p.org_id,
            "category": p.category,
            "cause_event_id": p.event_id,
            "cause_type": p.event_type,
            "job_id": p.job_id,
            "completion_id": p.completion_id,
            "redemption_id": p.redemption_id,
            "entry_hash": e.entry_hash,
            "occurred_at": utc_text(p.occurred_at),
            "recorded_at": recorded_text,
        },
    )


def utc_text(ts: datetime) -> str:
    """:func:`isoformat`'s text (``…T…:….ffffffZ``) from ``datetime.isoformat``, 3x faster than
    ``strftime``, and with four-digit years always (``strftime`` drops the zeros of a year
    below 1000, which the schemas' time pattern refuses)."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: Jifen keeps UTC timestamps only")
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="microseconds")[:-6] + "Z"


def _row(entry_id: int, e: Entry, recorded_at: datetime) -> tuple[Any, ...]:
    p = e.posting
    return (
        entry_id,
        p.account_id,
        e.account_seq,
        p.kind.value,
        p.amount,
        e.balance_after,
        p.org_id,
        p.category,
        p.event_id,
        p.event_type,
        p.job_id,
        p.completion_id,
        p.redemption_id,
        p.occurred_at,
        recorded_at,
        e.prev_hash,
        e.entry_hash,
        p.reward_id,
    )
