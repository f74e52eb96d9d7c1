"""PostgreSQL plumbing: the pool, numbered plain-SQL migrations, and named queries.

Migrations are ``NNNN_slug.sql`` files applied in order, each in its own transaction,
under an advisory lock so that two replicas starting at once do not race. A checksum per
applied file makes an edited, already-applied migration fail loudly instead of drifting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import orjson

log = logging.getLogger(__name__)

# What an outage or restart of PostgreSQL looks like to a client: the connection refused or
# lost, the server shutting down or not yet accepting (57P01..57P03), a pooled connection
# caught mid-protocol ("cannot switch to state ..."), a timeout. Consumers and background
# loops wait these out and retry; the APIs answer 503 with Retry-After.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 7_261_536  # any constant; one lock per database


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, reset: Any = None
) -> asyncpg.Pool:
    """``reset``: asyncpg's, run when a connection goes back (None: its default, a round
    trip resetting the whole session; an open transaction is rolled back in any case)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=60,
        reset=reset,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


async def wait_for_database(dsn: str, *, timeout: float = 30.0) -> None:
    """Wait until the server accepts connections (used at start and after an outage)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            if loop.time() > deadline:
                raise TimeoutError(f"database at {dsn} not reachable: {exc}") from exc
            await asyncio.sleep(0.2)
        else:
            await conn.close()
            return


def migration_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.glob("*.sql") if _MIGRATION.match(p.name))
    versions = [p.name[:4] for p in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {directory}")
    return files


KERNEL_MIGRATIONS = Path(__file__).with_name("sql")


async def migrate(dsn: str, directory: Path, *, namespace: str = "service") -> list[str]:
    """Apply the kernel's migrations, then the pending ones of ``directory``.

    Versions are kept per namespace (``kernel:0001``, ``service:0001``) so the shared tables
    (outbox, inbox) and a service's own tables are numbered independently.
    """
    applied = await _migrate(dsn, KERNEL_MIGRATIONS, "kernel")
    return applied + await _migrate(dsn, directory, namespace)


async def _migrate(dsn: str, directory: Path, namespace: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migration (
                   version    text PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migration")
        }
        for path in migration_files(directory):
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            version = f"{namespace}:{path.name[:4]}"
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {path.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migration (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    path.name,
                    checksum,
                )
            log.info("applied migration %s", path.name)
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied_now


class Queries(Mapping[str, str]):
    """Named SQL statements from ``.sql`` files: each starts with ``-- name: <name>``."""

    _NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

    def __init__(self, directory: Path) -> None:
        self._sql: dict[str, str] = {}
        for path in sorted(directory.glob("*.sql")):
            text = path.read_text(encoding="utf-8")
            parts = self._NAME.split(text)
            for name, body in zip(parts[1::2], parts[2::2], strict=True):
                if name in self._sql:
                    raise RuntimeError(f"query {name} defined twice")
                self._sql[name] = body.strip().rstrip(";")

    def __getitem__(self, name: str) -> str:
        return self._sql[name]

    def __iter__(self) -> Any:
        return iter(self._sql)

    def __len__(self) -> int:
        return len(self._sql)


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` if missing (the embedded stack gives each service its own)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"bad database name {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
