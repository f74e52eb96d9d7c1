"""The redeem worker: outbox relay, wallets kept from the ledger's events (which also confirm
redemptions once their debit is appended), the expiry of unfulfilled vouchers, and asking the
ledger again for what it has not answered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg
from fastapi import FastAPI

from jifen.kernel import topics
from jifen.kernel.consumer import Handler
from jifen.kernel.contracts import Contracts
from jifen.kernel.worker import build_worker_app as _build
from jifen.redeem import handlers
from jifen.redeem.db import queries
from jifen.redeem.settings import RedeemSettings

log = logging.getLogger(__name__)


def build_worker_app(settings: RedeemSettings | None = None) -> FastAPI:
    settings = settings or RedeemSettings()
    q = queries()
    contracts = Contracts(settings.schemas_dir)

    async def on_entry(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
        await handlers.apply_ledger_entry(
            conn, q, event, contracts=contracts, voucher_ttl_seconds=settings.voucher_ttl_seconds
        )

    def consumer_handlers() -> dict[str, Handler]:
        return {"jifen.points.entry.appended.v1": on_entry}

    async def expire_loop(pool: asyncpg.Pool) -> None:
        while True:
            try:
                n = await handlers.expire_due(pool, q, contracts, batch=settings.expiry_batch)
                if n:
                    log.info("expired %d vouchers", n)
                if n >= settings.expiry_batch:
                    continue  # more are due: no pause
            except asyncio.CancelledError:
                raise
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ):
                # a database outage is waited out; nothing is lost, the vouchers stay due
                log.exception("voucher expiry failed; retrying")
            await asyncio.sleep(settings.expiry_poll_seconds)

    async def resend_loop(pool: asyncpg.Pool) -> None:
        while True:
            try:
                n = await handlers.ask_again(
                    pool,
                    q,
                    contracts,
                    after_seconds=settings.resend_after_seconds,
                    batch=settings.resend_batch,
                )
                if n:
                    log.warning("sent %d redemption events again: the ledger had not answered", n)
            except asyncio.CancelledError:
                raise
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ):
                log.exception("re-sending overdue redemption events failed; retrying")
            await asyncio.sleep(max(1.0, settings.resend_after_seconds / 4))

    def loops(pool: asyncpg.Pool) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        return [("voucher-expiry", expire_loop(pool)), ("resend-overdue", resend_loop(pool))]

    return _build(
        service="redeem",
        settings=settings,
        group_id=settings.consumer_group,
        topic_names=[topics.POINTS_LEDGER],
        handlers=consumer_handlers,
        extra_loops=loops,
    )
