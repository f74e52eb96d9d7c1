"""The background sequencer and periodic checkpoints, run inside the points worker process.

Every ``audit_sequence_seconds`` it places newly committed ledger entries in the tree (one
sequencer at a time across replicas, by advisory lock; a cheap pass over recent ids); every
``audit_checkpoint_seconds`` it makes a full pass and signs a checkpoint if the tree grew.
It runs beside the ledger consumer, never in its transaction, so appends never wait for it.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import Counter, Gauge

from jifen.points.audit import store
from jifen.points.db import queries
from jifen.points.settings import PointsSettings

log = logging.getLogger(__name__)

PLACED = Counter(
    "jifen_points_audit_entries_placed_total", "Ledger entries given a position in the audit tree."
)
ERRORS = Counter(
    "jifen_points_audit_sequencer_errors_total",
    "Failed sequencer or checkpoint passes (the ledger carries on; the tree lags).",
)
CHECKPOINT_SIZE = Gauge(
    "jifen_points_audit_checkpoint_tree_size", "Tree size of the newest signed checkpoint."
)
CHECKPOINT_TIME = Gauge(
    "jifen_points_audit_checkpoint_timestamp_seconds",
    "When this process last signed or confirmed a checkpoint (alert when it grows old).",
)


class AuditSettings(PointsSettings):
    """``JIFEN_POINTS_AUDIT_SEQUENCE_SECONDS`` and ``JIFEN_POINTS_AUDIT_CHECKPOINT_SECONDS``."""

    audit_sequence_seconds: float = 1.0
    audit_checkpoint_seconds: float = 60.0


async def audit_loop(settings: PointsSettings, pool: asyncpg.Pool) -> None:
    knobs = AuditSettings()  # type: ignore[call-arg]  # pydantic-settings reads the env
    q = queries()
    clock = asyncio.get_running_loop()
    last_checkpoint = clock.time()
    while True:
        try:
            async with pool.acquire() as conn:
                PLACED.inc(await store.sequence(conn, q, window=store.RECENT_WINDOW))
                if clock.time() - last_checkpoint >= knobs.audit_checkpoint_seconds:
                    PLACED.inc(await store.sequence(conn, q))  # the full pass
                    cp = await store.make_checkpoint(conn, q, settings.keys_dir, place_first=False)
                    last_checkpoint = clock.time()
                    CHECKPOINT_SIZE.set(cp.tree_size)
                    CHECKPOINT_TIME.set_to_current_time()
                    log.info("audit checkpoint %s root %s", cp.tree_size, cp.root_hash.hex())
        except asyncio.CancelledError:
            raise
        except Exception:  # the audit tree must never take the ledger down
            # (this runs in the ledger worker's process, whose loops exit it when they die)
            ERRORS.inc()
            log.exception("audit sequencer failed; retrying")
            await asyncio.sleep(min(30.0, 10 * knobs.audit_sequence_seconds))
        await asyncio.sleep(knobs.audit_sequence_seconds)
