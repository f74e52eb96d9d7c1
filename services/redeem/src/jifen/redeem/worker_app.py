"""The redeem worker: outbox relay, wallets kept from the ledger's events (which also confirm
redemptions once their debit is appended), the expiry of unfulfilled vouchers, and asking the
ledger again for what it has not answered.

The relay, the consumer and the lifespan are the kernel's (:func:`build_worker_app`); this
module only names what redeem consumes and its two periodic passes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
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

# what a periodic pass waits out and retries: a database outage loses nothing, the work
# stays due
_RETRIED = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


async def _every(pause: float, step: Callable[[], Awaitable[bool]], failed: str) -> None:
    """Run ``step`` forever, ``pause`` seconds apart; at once again when it says more is due;
    a database fault logged as ``failed`` and retried after the pause."""
    while True:
        try:
            if await step():
                continue  # more are due: no pause
        except asyncio.CancelledError:
            raise
        except _RETRIED:
            log.exception(failed)
        await asyncio.sleep(pause)


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

    def loops(pool: asyncpg.Pool) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        async def expire() -> bool:
            n = await handlers.expire_due(pool, q, contracts, batch=settings.expiry_batch)
            if n:
                log.info("expired %d vouchers", n)
            return n >= settings.expiry_batch

        async def resend() -> bool:
            n = await handlers.ask_again(
                pool,
                q,
                contracts,
                after_seconds=settings.resend_after_seconds,
                batch=settings.resend_batch,
            )
            if n:
                log.warning("sent %d redemption events again: the ledger had not answered", n)
            return False

        return [
            (
                "voucher-expiry",
                _every(settings.expiry_poll_seconds, expire, "voucher expiry failed; retrying"),
            ),
            (
                "resend-overdue",
                _every(
                    max(1.0, settings.resend_after_seconds / 4),
                    resend,
                    "re-sending overdue redemption events failed; retrying",
                ),
            ),
        ]

    return _build(
        service="redeem",
        settings=settings,
        group_id=settings.consumer_group,
        topic_names=[topics.POINTS_LEDGER],
        handlers=consumer_handlers,
        extra_loops=loops,
    )
