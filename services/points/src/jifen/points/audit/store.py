"""The audit tree in PostgreSQL: the sequencer that places committed entries, checkpoints,
proofs and the export rows. The hashing and proof logic is ``domain.merkle``; this binds it
to named queries.

The sequencer is single (a transaction-scoped advisory lock; a second caller just returns)
and runs beside the ledger worker, never inside its transaction, so appends never wait for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from jifen.kernel.contracts import isoformat
from jifen.kernel.db import Queries
from jifen.points.audit.domain.canonical import entry_from_row, leaf_bytes
from jifen.points.audit.domain.checkpoint import Checkpoint, sign_checkpoint
from jifen.points.audit.domain.merkle import (
    Frontier,
    NodeGetter,
    consistency_proof,
    frontier_keys,
    inclusion_proof,
    leaf_hash,
    needed_nodes,
)
from jifen.points.audit.keys import current_signer

SEQUENCE_BATCH = 10_000
# ids a concurrent transaction may hold back while later ones commit: far more than the
# ledger workers ever have in flight (batches of ~2,000)
RECENT_WINDOW = 100_000


async def fetch_nodes(
    conn: asyncpg.Connection, q: Queries, keys: set[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    if not keys:
        return {}
    ks = sorted(keys)
    rows = await conn.fetch(q["audit_nodes"], [k[0] for k in ks], [k[1] for k in ks])
    return {(r["level"], r["idx"]): bytes(r["hash"]) for r in rows}


async def frontier_at(conn: asyncpg.Connection, q: Queries, size: int) -> Frontier:
    keys = frontier_keys(size)
    nodes = await fetch_nodes(conn, q, set(keys))
    return Frontier(size, [nodes[k] for k in keys])


async def sequence(
    conn: asyncpg.Connection,
    q: Queries,
    batch: int = SEQUENCE_BATCH,
    window: int | None = None,
) -> int:
    """Give every committed, unplaced entry the next tree position; return how many.

    With ``window``, look only at ids above (highest placed id − window): an index range,
    cheap enough to run every second. An entry whose transaction took its id earlier and
    committed later than that is still placed by the next full pass (every checkpoint)."""
    placed = 0
    while True:
        async with conn.transaction():
            if not await conn.fetchval(q["audit_sequencer_lock"]):
                return placed  # another sequencer is at work
            floor = 0
            if window is not None:
                floor = max(0, await conn.fetchval(q["audit_max_placed_entry"]) - window)
            rows = await conn.fetch(q["audit_unplaced_entries"], batch, floor)
            if not rows:
                return placed
            size = await conn.fetchval(q["audit_tree_size"])
            frontier = await frontier_at(conn, q, size)
            made = frontier.extend(leaf_hash(leaf_bytes(entry_from_row(r))) for r in rows)
            await conn.copy_records_to_table(
                "merkle_leaf",
                records=[(size + i, r["entry_id"]) for i, r in enumerate(rows)],
                columns=["position", "entry_id"],
            )
            await conn.copy_records_to_table(
                "merkle_node", records=made, columns=["level", "idx", "hash"]
            )
        placed += len(rows)
        if len(rows) < batch:
            return placed


def checkpoint_from_row(r: Any) -> Checkpoint:
    return Checkpoint(
        tree_size=r["tree_size"],
        root_hash=bytes(r["root_hash"]),
        issued_at=r["issued_at"],
        key_id=r["key_id"],
        signature=bytes(r["signature"]),
        origin=r["origin"],
    )


async def make_checkpoint(
    conn: asyncpg.Connection, q: Queries, keys_dir: Path, place_first: bool = True
) -> Checkpoint:
    """Place what is committed (unless the caller just did), then sign the tree as it now
    stands (one checkpoint per size: asking again without new entries returns the latest)."""
    if place_first:
        await sequence(conn, q)
    async with conn.transaction():
        await conn.execute(q["audit_checkpoint_lock"])
        size = await conn.fetchval(q["audit_tree_size"])
        latest = await conn.fetchrow(q["audit_latest_checkpoint"])
        if latest is not None and latest["tree_size"] >= size:
            return checkpoint_from_row(latest)
        root = (await frontier_at(conn, q, size)).root()
        kid, key = current_signer(keys_dir)
        issued = isoformat(datetime.now(UTC))
        cp = sign_checkpoint(key, Checkpoint(size, root, issued, kid))
        await conn.execute(
            q["audit_insert_checkpoint"],
            cp.tree_size,
            cp.root_hash,
            cp.issued_at,
            cp.key_id,
            cp.signature,
            cp.origin,
        )
        return cp


async def proof(
    conn: asyncpg.Connection, q: Queries, build: Callable[[NodeGetter], list[bytes]]
) -> list[bytes]:
    """Run a proof builder twice: once to learn which nodes it reads, once on the fetched nodes."""
    nodes = await fetch_nodes(conn, q, needed_nodes(build))
    return build(lambda level, index: nodes[(level, index)])


async def inclusion(conn: asyncpg.Connection, q: Queries, position: int, size: int) -> list[bytes]:
    return await proof(conn, q, lambda get: inclusion_proof(position, size, get))


async def consistency(conn: asyncpg.Connection, q: Queries, first: int, second: int) -> list[bytes]:
    return await proof(conn, q, lambda get: consistency_proof(first, second, get))


def export_record(r: Any, org_id: str | None) -> dict[str, Any]:
    """One export line: full content for the reader's organisation, the leaf hash alone for
    others' entries (the tree still checks), and a marker where the entry is gone."""
    rec: dict[str, Any] = {"position": r["position"], "leaf_hash": bytes(r["leaf_hash"]).hex()}
    if r["entry_id"] is None:
        rec["missing"] = True
        rec["entry_id"] = r["placed_id"]
    elif org_id is not None and r["org_id"] != org_id:
        rec["redacted"] = True
    else:
        rec["entry"] = entry_from_row(r)
    return rec


async def export_rows(
    conn: asyncpg.Connection, q: Queries, start: int, end: int, org_id: str | None, page: int = 5000
) -> AsyncIterator[dict[str, Any]]:
    pos = start
    while pos < end:
        rows = await conn.fetch(q["audit_export_range"], pos, min(end, pos + page))
        if not rows:
            return
        for r in rows:
            yield export_record(r, org_id)
        pos = rows[-1]["position"] + 1
