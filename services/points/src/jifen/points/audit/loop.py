"""The background sequencer and periodic checkpoints, run in the points relay process
(``relay_app.py``), beside the ledger relay and apart from the ledger worker.

Every ``audit_sequence_seconds`` it places newly committed ledger entries in the tree (one
sequencer at a time across replicas, by advisory lock; a cheap pass over recent ids); every
``audit_checkpoint_seconds`` it makes a full pass and signs a checkpoint if the tree grew.
It runs apart from the ledger consumer, never in its transaction, so appends never wait for
it, and its passes take no CPU from the worker's process.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.metrics import MetricWrapperBase

from jifen.points.audit import store
from jifen.points.audit.domain.canonical import entry_from_row, leaf_bytes, recompute_entry_hash
from jifen.points.audit.domain.checkpoint import Checkpoint, checkpoint_signature_ok
from jifen.points.audit.domain.merkle import leaf_hash, verify_consistency
from jifen.points.audit.keys import public_keys
from jifen.points.db import queries
from jifen.points.settings import PointsSettings

log = logging.getLogger(__name__)

# These metrics belong to the process that runs ``audit_loop`` (the points relay). They are
# made unregistered, so importing this module (the API and the signals process do, through
# ``jifen.points.__main__``) exports nothing; ``audit_loop`` registers the counters when it
# starts, the checkpoint gauges at its first checkpoint, the verification gauges at its first
# self-verification: until then they are absent, never a 0 an alert would take for a failure.
PLACED = Counter(
    "jifen_points_audit_entries_placed_total",
    "Ledger entries given a position in the audit tree.",
    registry=None,
)
ERRORS = Counter(
    "jifen_points_audit_sequencer_errors_total",
    "Failed sequencer or checkpoint passes (the ledger carries on; the tree lags).",
    registry=None,
)
CHECKPOINT_SIZE = Gauge(
    "jifen_points_audit_checkpoint_tree_size",
    "Tree size of the newest signed checkpoint.",
    registry=None,
)
CHECKPOINT_TIME = Gauge(
    "jifen_points_audit_checkpoint_timestamp_seconds",
    "When this process last signed or confirmed a checkpoint (alert when it grows old).",
    registry=None,
)


VERIFIED_OK = Gauge(
    "jifen_points_audit_verification_ok",
    "1 if the last self-verification held (new checkpoint signed by a published key and "
    "consistent with the previous one; every newly placed entry's hash and leaf recomputed), "
    "0 if it failed: possible tampering, see the points relay's log. Absent until the first "
    "self-verification of this process.",
    registry=None,
)
VERIFIED_AT = Gauge(
    "jifen_points_audit_last_verification_timestamp_seconds",
    "When the last self-verification ran.",
    registry=None,
)
_EXPORTED: set[int] = set()


def export(*metrics: MetricWrapperBase) -> None:
    """Put ``metrics`` on this process's /metrics (once; later calls are no-ops)."""
    for m in metrics:
        if id(m) not in _EXPORTED:
            REGISTRY.register(m)
            _EXPORTED.add(id(m))


async def self_verify(
    conn: asyncpg.Connection, keys_dir: Path, previous: Checkpoint | None, cp: Checkpoint
) -> list[str]:
    """What an auditor would check of the step from ``previous`` to ``cp``; the problems found."""
    q = queries()
    problems: list[str] = []
    why = checkpoint_signature_ok(cp, public_keys(keys_dir))
    if why:
        problems.append(f"checkpoint {cp.tree_size}: {why}")
    first = previous.tree_size if previous else 0
    if previous is not None and previous.tree_size < cp.tree_size:
        proof = await store.consistency(conn, q, previous.tree_size, cp.tree_size)
        if not verify_consistency(
            previous.tree_size, cp.tree_size, previous.root_hash, cp.root_hash, proof
        ):
            problems.append(f"checkpoint {cp.tree_size} is not consistent with {first}")
    for row in await conn.fetch(q["audit_export_range"], first, cp.tree_size):
        if row["entry_id"] is None:
            problems.append(f"position {row['position']}: its entry {row['placed_id']} is gone")
            continue
        entry = entry_from_row(row)
        if recompute_entry_hash(entry) != row["entry_hash"]:
            problems.append(f"entry {row['entry_id']}: content does not match its entry_hash")
        elif leaf_hash(leaf_bytes(entry)) != bytes(row["leaf_hash"]):
            problems.append(f"entry {row['entry_id']}: content does not match its tree leaf")
    return problems


class AuditSettings(PointsSettings):
    """``JIFEN_POINTS_AUDIT_SEQUENCE_SECONDS`` and ``JIFEN_POINTS_AUDIT_CHECKPOINT_SECONDS``."""

    audit_sequence_seconds: float = 1.0
    audit_checkpoint_seconds: float = 60.0


# While the ledger is busy (a pass found at least a worker batch to place), pass less often:
# each pass costs a scan of the recent window whatever it finds, in this process and in
# PostgreSQL, both shared with the ledger consumer; the tree is read at checkpoints, which
# are unchanged, so it only lags a few seconds more under a backlog.
BUSY_PLACED = 2_000
BUSY_SLOWDOWN = 5.0


def next_pass_in(placed: int, every: float) -> float:
    return every * BUSY_SLOWDOWN if placed >= BUSY_PLACED else every


async def audit_loop(settings: PointsSettings, pool: asyncpg.Pool) -> None:
    knobs = AuditSettings()  # type: ignore[call-arg]  # pydantic-settings reads the env
    q = queries()
    clock = asyncio.get_running_loop()
    last_checkpoint = clock.time()
    previous: Checkpoint | None = None
    export(PLACED, ERRORS)
    while True:
        placed = 0
        try:
            async with pool.acquire() as conn:
                placed = await store.sequence(conn, q, window=store.RECENT_WINDOW)
                PLACED.inc(placed)
                if clock.time() - last_checkpoint >= knobs.audit_checkpoint_seconds:
                    PLACED.inc(await store.sequence(conn, q))  # the full pass
                    cp = await store.make_checkpoint(conn, q, settings.keys_dir, place_first=False)
                    last_checkpoint = clock.time()
                    CHECKPOINT_SIZE.set(cp.tree_size)
                    CHECKPOINT_TIME.set_to_current_time()
                    export(CHECKPOINT_SIZE, CHECKPOINT_TIME)
                    if previous is None or cp.tree_size != previous.tree_size:
                        problems = await self_verify(conn, settings.keys_dir, previous, cp)
                        VERIFIED_OK.set(0 if problems else 1)
                        VERIFIED_AT.set_to_current_time()
                        export(VERIFIED_OK, VERIFIED_AT)
                        for problem in problems[:50]:
                            log.error("self-verification: %s", problem)
                        previous = cp
                    log.info("audit checkpoint %s root %s", cp.tree_size, cp.root_hash.hex())
        except asyncio.CancelledError:
            raise
        except Exception:  # the audit tree must never take the ledger down
            # (this runs beside the ledger relay, whose process exits when a loop dies)
            ERRORS.inc()
            log.exception("audit sequencer failed; retrying")
            await asyncio.sleep(min(30.0, 10 * knobs.audit_sequence_seconds))
        await asyncio.sleep(next_pass_in(placed, knobs.audit_sequence_seconds))
