"""Composition helpers for a service process: start-up order and the ``api|worker|migrate`` CLI."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from jifen.kernel.db import ensure_database, migrate, wait_for_database
from jifen.kernel.kafka import make_producer
from jifen.kernel.runtime import configure_logging, serve
from jifen.kernel.settings import ServiceSettings

log = logging.getLogger(__name__)


def admin_dsn(dsn: str) -> tuple[str, str]:
    """The DSN of the server's ``postgres`` database, and the database name of ``dsn``."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    return urlunsplit(parts._replace(path="/postgres")), name


async def prepare_database(dsn: str, migrations: Path) -> None:
    """Wait for the server, create the service's database if we may, apply migrations."""
    admin, name = admin_dsn(dsn)
    await wait_for_database(admin, timeout=60)
    try:
        await ensure_database(admin, name)
    except asyncpg.InsufficientPrivilegeError:
        log.info("may not create database %s; assuming it exists", name)
    await migrate(dsn, migrations)


async def start_producer(bootstrap: str, *, timeout: float = 60) -> AIOKafkaProducer:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        producer = make_producer(bootstrap)
        try:
            await producer.start()
            return producer
        except (KafkaError, OSError):
            await producer.stop()
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


def main(
    *,
    prog: str,
    settings_factory: Callable[[], ServiceSettings],
    migrations: Path,
    api: Callable[[ServiceSettings], FastAPI],
    worker: Callable[[ServiceSettings], FastAPI],
    extra: dict[str, Callable[[ServiceSettings], None]] | None = None,
) -> None:
    extra = extra or {}
    parser = argparse.ArgumentParser(prog=prog, description=f"Run the {prog} service.")
    parser.add_argument(
        "command",
        choices=["api", "worker", "migrate", *extra],
        help="api: the HTTP API; worker: consumers and the outbox relay; "
        "migrate: create the database and apply migrations, then exit"
        + "".join(f"; {name}: see the service's README" for name in extra),
    )
    args = parser.parse_args()
    settings = settings_factory()
    configure_logging(settings.log_level)
    asyncio.run(
        prepare_database(settings.migrate_database_url or settings.database_url, migrations)
    )
    if args.command == "api":
        serve(api(settings), settings.host, settings.port, settings.log_level)
    elif args.command == "worker":
        serve(worker(settings), settings.host, settings.worker_port, settings.log_level)
    elif args.command in extra:
        extra[args.command](settings)
