"""The tasks worker: outbox relay, credit acknowledgements from the ledger, and republishing
of verified completions the ledger has not credited within the bound; beside them, recurring
jobs rolled, webhooks delivered and claim reminders sent.

A broker that forgets (a topic deleted and re-created, an unclean leader election; the opt-in
Tansu on any restart) loses completions not yet read by the ledger: they stay unacknowledged
here and are republished after the bound (the ledger applies each cause once). The
acknowledgements the ledger publishes afterwards are read because the kernel's consumer notices
the forgotten offsets and starts again from the beginning of the new log
(``jifen.kernel.kafka.OffsetGuard``); tests/kafka/test_unclean_election.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from jifen.kernel import topics
from jifen.kernel.consumer import Handler
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import DATABASE_UNAVAILABLE
from jifen.kernel.worker import build_worker_app as _build
from jifen.tasks import handlers
from jifen.tasks.db import queries
from jifen.tasks.domain.jobs import months_from
from jifen.tasks.sender import make_sender
from jifen.tasks.settings import TasksSettings

log = logging.getLogger(__name__)


async def _republish_loop(pool: asyncpg.Pool, settings: TasksSettings) -> None:
    q = queries()
    bound = timedelta(seconds=settings.credit_timeout_seconds)
    while True:
        try:
            async with pool.acquire() as conn:
                n = await handlers.republish_uncredited(conn, q, older_than=bound)
                if n:
                    log.warning("republished %d verified completions not yet credited", n)
        except asyncio.CancelledError:
            raise
        except (asyncpg.PostgresError, *DATABASE_UNAVAILABLE):
            log.exception("republish pass failed; will retry")
        await asyncio.sleep(max(1.0, settings.credit_timeout_seconds / 3))


async def _roll_loop(pool: asyncpg.Pool, settings: TasksSettings) -> None:
    """Keep this month and the next ``roll_ahead_months`` published for every running
    recurring series (issue 21: the repair day on the 15th appears in every community's menu
    without an officer rolling it). Idempotent, so any number of workers may run it."""
    q, contracts = queries(), Contracts(settings.schemas_dir)
    while settings.roll_ahead_months > 0:
        try:
            async with pool.acquire() as conn:
                months = months_from(datetime.now(UTC), settings.roll_ahead_months)
                n = await handlers.roll_due(conn, q, contracts, months=months)
                if n:
                    log.info("rolled %d recurring jobs into %s", n, ", ".join(months))
        except asyncio.CancelledError:
            raise
        except (asyncpg.PostgresError, *DATABASE_UNAVAILABLE):
            log.exception("rolling recurring jobs failed; will retry")
        await asyncio.sleep(settings.roll_every_seconds)


async def _remind_loop(pool: asyncpg.Pool, settings: TasksSettings) -> None:
    """Remind the volunteers holding a place in a job that starts soon (issue 21: a claim
    reminder), through the sender the sign-in codes use. Once per claim, so any number of
    workers may run it."""
    q, sender = queries(), make_sender(settings)
    lead = timedelta(minutes=settings.remind_before_minutes)
    while settings.remind_before_minutes > 0:
        try:
            async with pool.acquire() as conn:
                n = await handlers.remind_claims(conn, q, sender, lead=lead)
                if n:
                    log.info("reminded %d claims of jobs starting within %s", n, lead)
        except asyncio.CancelledError:
            raise
        except (asyncpg.PostgresError, *DATABASE_UNAVAILABLE):
            log.exception("reminding claims failed; will retry")
        await asyncio.sleep(settings.remind_every_seconds)


async def _webhook_loop(pool: asyncpg.Pool, settings: TasksSettings) -> None:
    """Post the due webhook deliveries (``handlers.deliver_due``), again and again."""
    q = queries()
    async with httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds, follow_redirects=False
    ) as http:
        while True:
            tried = 0
            try:
                tried = await handlers.deliver_due(
                    pool,
                    q,
                    http,
                    retry_seconds=settings.webhook_retry_seconds,
                    max_attempts=settings.webhook_max_attempts,
                )
            except asyncio.CancelledError:
                raise
            except (asyncpg.PostgresError, *DATABASE_UNAVAILABLE):
                log.exception("delivering webhooks failed; will retry")
            await asyncio.sleep(0.2 if tried else 1.0)


def build_worker_app(settings: TasksSettings | None = None) -> FastAPI:
    settings = settings or TasksSettings()
    q = queries()

    async def on_entry(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
        await handlers.mark_credited(conn, q, event)

    def consumer_handlers() -> dict[str, Handler]:
        return {"jifen.points.entry.appended.v1": on_entry}

    def loops(pool: asyncpg.Pool) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        return [
            ("republish", _republish_loop(pool, settings)),
            ("roll", _roll_loop(pool, settings)),
            ("webhooks", _webhook_loop(pool, settings)),
            ("reminders", _remind_loop(pool, settings)),
        ]

    return _build(
        service="tasks",
        settings=settings,
        group_id=settings.consumer_group,
        topic_names=[topics.POINTS_LEDGER],
        handlers=consumer_handlers,
        extra_loops=loops,
    )
