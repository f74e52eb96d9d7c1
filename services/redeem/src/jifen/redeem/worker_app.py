"""The redeem worker: outbox relay, and wallets kept from the ledger's events (which also
confirm redemptions once their debit is appended)."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI

from jifen.kernel import topics
from jifen.kernel.consumer import Handler
from jifen.kernel.worker import build_worker_app as _build
from jifen.redeem import handlers
from jifen.redeem.db import queries
from jifen.redeem.settings import RedeemSettings


def build_worker_app(settings: RedeemSettings | None = None) -> FastAPI:
    settings = settings or RedeemSettings()
    q = queries()

    async def on_entry(conn: asyncpg.Connection, event: dict[str, Any]) -> None:
        await handlers.apply_ledger_entry(conn, q, event)

    def consumer_handlers() -> dict[str, Handler]:
        return {"jifen.points.entry.appended.v1": on_entry}

    return _build(
        service="redeem",
        settings=settings,
        group_id=settings.consumer_group,
        topic_names=[topics.POINTS_LEDGER],
        handlers=consumer_handlers,
    )
