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

from jifen.points.audit import store
from jifen.points.db import queries
from jifen.points.settings import PointsSettings

log = logging.getLogger(__name__)


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
                await store.sequence(conn, q, window=store.RECENT_WINDOW)
                if clock.time() - last_checkpoint >= knobs.audit_checkpoint_seconds:
                    cp = await store.make_checkpoint(conn, q, settings.keys_dir)
                    last_checkpoint = clock.time()
                    log.info("audit checkpoint %s root %s", cp.tree_size, cp.root_hash.hex())
        except asyncio.CancelledError:
            raise
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
            log.exception("audit sequencer failed; retrying")
        await asyncio.sleep(knobs.audit_sequence_seconds)
