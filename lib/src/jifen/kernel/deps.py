"""What every service's API declares the same way: its FastAPI dependencies and its lifespan.

A route takes what it needs by type, as in the FastAPI project template's ``api/deps.py``::

    async def publish_job(body: JobIn, conn: Conn, q: Q, contracts: Events, who: Officer): ...

and a service's ``build_app`` opens and closes its resources with one :func:`service_lifespan`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Request

from jifen.kernel.auth import TokenVerifier
from jifen.kernel.contracts import Contracts
from jifen.kernel.db import Queries, create_pool
from jifen.kernel.runtime import cancel, spawn
from jifen.kernel.settings import ServiceSettings
from jifen.kernel.web import Conn, db_connection, pool_check

__all__ = [
    "Conn",
    "Events",
    "Q",
    "contracts_of",
    "db_connection",
    "get_contracts",
    "get_queries",
    "queries_of",
]


def queries_of(request: Request) -> Queries:
    """The service's named SQL, for a hot route that takes ``request`` instead of ``Q``
    (each dependency FastAPI solves costs CPU on every request)."""
    q: Queries = request.app.state.queries
    return q


def contracts_of(request: Request) -> Contracts:
    """The event contracts, for a hot route that takes ``request`` instead of ``Events``."""
    c: Contracts = request.app.state.contracts
    return c


# ``async def``, though they only read app.state: FastAPI runs a plain ``def`` dependency in
# a worker thread, a hand-off that cost more CPU than the request's own work (issue 18)
async def get_queries(request: Request) -> Queries:
    return queries_of(request)


async def get_contracts(request: Request) -> Contracts:
    return contracts_of(request)


# the service's named SQL (``q["name"]``)
Q = Annotated[Queries, Depends(get_queries)]
# the event contracts, to build and validate the events a request records
Events = Annotated[Contracts, Depends(get_contracts)]


async def keep_session(_: asyncpg.Connection) -> None:
    """How an API's pooled connection is reset when a request gives it back: not at all
    beyond what asyncpg always does (roll back an open transaction, drop listeners).

    asyncpg's default sends one more statement each time (``pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL``), a round trip per request. A request leaves none of that
    behind: its locks are transaction-scoped (``pg_advisory_xact_lock``, ``FOR UPDATE``), it
    sets no session settings, opens no cursor outside a transaction and LISTENs on no pooled
    connection (the outbox relay listens on a connection of its own, in the worker)."""


# a loop the API runs beside its requests (a gauge refresher), given the started app
Background = Callable[[FastAPI], Coroutine[Any, Any, None]]


def service_lifespan(
    settings: ServiceSettings,
    queries: Callable[[], Queries],
    *,
    pool_max_size: int = 10,
    background: Mapping[str, Background] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of a service's API: settings, token verifier, queries, contracts and the
    pool on ``app.state``; the database among the readiness checks; each ``background`` loop
    started once the pool is open (a loop that dies ends the process: :func:`spawn`), and
    everything stopped and closed in reverse on shutdown."""
    loops = dict(background or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.verifier = TokenVerifier(settings.keys_dir)
        app.state.queries = queries()
        app.state.contracts = Contracts(settings.schemas_dir)
        app.state.pool = await create_pool(
            settings.database_url, max_size=pool_max_size, reset=keep_session
        )
        app.state.ready_checks["database"] = lambda: pool_check(app.state.pool)
        running = [spawn(make(app), name) for name, make in loops.items()]
        try:
            yield
        finally:
            await cancel(*running)
            await app.state.pool.close()

    return lifespan
