"""A PostgreSQL connection lost while a request is being answered still gets that request, and
the next one on the same HTTP connection, a complete answer (issue: "every request answered
during a PostgreSQL restart").

What escaped before: FastAPI closes a dependency with ``yield`` *after* the response has been
sent. The services' connection dependency returned its connection to the asyncpg pool there,
and the pool's reset of a connection whose backend had just gone (a restart, a
``pg_terminate_backend``) raised. An error after the response started cannot become a 503: the
server logged it and closed the client's keep-alive connection, and the client's next request on
it met a closed socket (``ReadError('')``) with no answer at all. The real server, the kernel's
app factory and connection dependency, and a real PostgreSQL; the backend is terminated from a
second connection, no mock."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import uvicorn

from jifen.devtools.stack import free_port, postgres_bin_dir
from jifen.kernel.web import Conn, create_app, pool_check
from tests.helpers import eventually

pytestmark = pytest.mark.e2e


async def _terminate(admin: asyncpg.Connection, pid: int) -> None:
    await admin.execute("SELECT pg_terminate_backend($1)", pid)

    async def gone() -> bool:
        n = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
        return bool(n == 0)

    await eventually(gone, timeout=30, what=f"backend {pid} gone")


def _terminate_blocking(dsn: str, pid: int) -> None:
    """Terminate backend ``pid`` and return once it is gone, from a psql process, so that this
    process's event loop does not run meanwhile (and cannot notice the loss early)."""
    # psql's own variables keep the pid out of the statements' text
    sql = (
        "SELECT pg_terminate_backend(:pid);"
        " CREATE FUNCTION pg_temp.wait_gone(p int) RETURNS void LANGUAGE plpgsql AS $$"
        " BEGIN WHILE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p)"
        " LOOP PERFORM pg_sleep(0.01); END LOOP; END $$;"
        " SELECT pg_temp.wait_gone(:pid);"
    )
    psql = str(postgres_bin_dir() / "psql")
    subprocess.run(
        [psql, dsn, "-qAt", "-v", "ON_ERROR_STOP=1", "-v", f"pid={int(pid)}"],
        input=sql.encode(),
        check=True,
        capture_output=True,
        timeout=30,
    )


@contextlib.asynccontextmanager
async def _server(dsn: str, admin: asyncpg.Connection) -> AsyncIterator[uvicorn.Server]:
    lose_on_return: set[int] = set()

    async def reset(conn: asyncpg.Connection) -> None:
        # PostgreSQL goes away while the pool resets a connection it got back: what a restart
        # does to every request whose answer has just been sent
        pid = conn.get_server_pid()
        if pid in lose_on_return:
            _terminate_blocking(dsn, pid)
        await conn.reset()

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, reset=reset)
    assert pool is not None

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        yield

    app = create_app(service="probe", title="probe", description="probe", lifespan=lifespan)
    app.state.pool = pool
    app.state.ready_checks = {"database": lambda: pool_check(pool)}

    @app.get("/answered-then-lost")
    async def answered_then_lost(conn: Conn) -> dict[str, int]:
        # the request's work is done and its answer decided; PostgreSQL loses the backend as
        # the connection goes back to the pool, after the answer has been sent
        pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        lose_on_return.add(pid)
        return {"backend": pid}

    @app.get("/lost-before-the-query")
    async def lost_before_the_query(conn: Conn) -> dict[str, int]:
        pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        await _terminate(admin, pid)
        return {"n": int(await conn.fetchval("SELECT 1"))}

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    try:
        await eventually(started, timeout=30, what="probe server listening")
        server.config.port = port
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        await pool.close()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection; (status, body), or (0, b'') when the
    server closed the connection instead of answering."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (asyncio.IncompleteReadError, ConnectionError):
        return 0, b""
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/answered-then-lost", 200), ("/lost-before-the-query", 503)],
)
async def test_a_lost_database_connection_never_closes_the_client_connection(
    fresh_db: Callable[[Path], Awaitable[str]], tmp_path: Path, path: str, status: int
) -> None:
    dsn = await fresh_db(tmp_path)  # the kernel's tables only
    admin = await asyncpg.connect(dsn)
    try:
        async with _server(dsn, admin) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.config.port)
            try:
                got, body = await _exchange(reader, writer, path)
                assert got == status, body
                if status == 503:
                    assert b"database is unavailable" in body

                async def request_done() -> bool:  # its connection back in the pool, or lost
                    return not server.server_state.tasks

                await eventually(request_done, timeout=30, what="the first request finished")
                # the same connection answers the next request: it was not dropped
                again, body = await _exchange(reader, writer, "/healthz")
                assert again == 200, "the server closed the connection instead of answering"
            finally:
                writer.close()
    finally:
        await admin.close()
