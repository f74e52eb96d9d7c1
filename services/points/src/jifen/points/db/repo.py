"""The ledger's SQL, bound to named queries: chain heads, what is already applied, entries
in and out. No rules here: ``handlers/ledger.py`` decides, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from operator import itemgetter
from typing import Any

import asyncpg

from jifen.kernel.db import Queries
from jifen.points.domain.entry import COLUMNS, FIELDS, REPORTING
from jifen.points.domain.ledger import Entry, Head, Kind

LEDGER_COLUMNS = list(COLUMNS)
# what the write path stores: the columns, then the transaction the relay tails by (0012)
WRITTEN_COLUMNS = [*LEDGER_COLUMNS, "tx"]
# the values of LEDGER_COLUMNS, from an entry's values by field name
_STORED_OF = itemgetter(*FIELDS, *REPORTING)


async def lock_heads(
    conn: asyncpg.Connection, q: Queries, keys: list[tuple[str, str]]
) -> tuple[dict[tuple[str, str], Head], int]:
    """The chain heads of the (org_id, account_id) ``keys`` (made if new), locked until the
    transaction ends; ``keys`` in order, so two writers never deadlock. And the ``tx`` this
    transaction's entries carry: its own transaction id, or a head's ``head_tx`` if higher
    (migration 0012: tx never decreases along a chain, so the relay keeps chain order)."""
    orgs, accounts = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(q["ensure_accounts"], orgs, accounts)
    rows = await conn.fetch(q["lock_accounts"], orgs, accounts)
    tx = max(r["own_tx"] for r in rows)
    for r in rows:
        if r["head_tx"] is not None and r["head_tx"] > tx:
            tx = r["head_tx"]
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
        for r in rows
    }
    return heads, tx


async def applied_event_ids(conn: asyncpg.Connection, q: Queries, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` already caused an entry."""
    return {r["event_id"] for r in await conn.fetch(q["applied_event_ids"], event_ids)}


async def existing_refs(
    conn: asyncpg.Connection, q: Queries, completion_ids: list[str], redemption_ids: list[str]
) -> set[tuple[str, str, Kind]]:
    """(reference kind, reference id, entry kind) already in the ledger for these references."""
    return {
        (r["ref_kind"], r["ref_id"], Kind(r["kind"]))
        for r in await conn.fetch(q["existing_refs"], completion_ids, redemption_ids)
    }


async def insert_entries(
    conn: asyncpg.Connection, q: Queries, entries: list[Entry], recorded_at: datetime, tx: int
) -> list[int]:
    """Store ``entries`` (one COPY) recorded at ``recorded_at`` in transaction ``tx`` (see
    :func:`lock_heads`); their ids, in order. The ids are taken here, under the heads' locks,
    so an account's ids increase along its chain."""
    ids: list[int] = [r["id"] for r in await conn.fetch(q["next_entry_ids"], len(entries))]
    await conn.copy_records_to_table(
        "ledger_entry",
        records=[(*_row(i, e, recorded_at), tx) for i, e in zip(ids, entries, strict=True)],
        columns=WRITTEN_COLUMNS,
    )
    return ids


async def update_heads(
    conn: asyncpg.Connection, q: Queries, heads: Iterable[Head], tx: int
) -> None:
    """Move the chain heads to ``heads``, each now last written in transaction ``tx``."""
    changed = list(heads)
    await conn.execute(
        q["update_heads"],
        tx,
        [h.org_id for h in changed],
        [h.account_id for h in changed],
        [h.seq for h in changed],
        [h.balance for h in changed],
        [h.earned for h in changed],
        [h.spent for h in changed],
        [h.hash for h in changed],
    )


async def entries_by_cause(
    conn: asyncpg.Connection, q: Queries, cause_event_ids: list[str]
) -> list[asyncpg.Record]:
    """The stored entries these events caused, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(q["entries_by_cause"], cause_event_ids)
    return rows


def _row(entry_id: int, e: Entry, recorded_at: datetime) -> tuple[Any, ...]:
    """The ledger_entry row of ``e`` (values in ``LEDGER_COLUMNS`` order)."""
    row: tuple[Any, ...] = _STORED_OF(e.values(entry_id, recorded_at))
    return row
