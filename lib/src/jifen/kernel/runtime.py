"""Running a Jifen process: JSON logs, background loops that must not die quietly, uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import uvicorn


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the event id when the caller passes ``extra={'event_id'}``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("service", "event_id", "cause_event_id", "account_id", "event_ids"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def configure_logging(level: str = "INFO") -> None:
    import time

    logging.Formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


# loops being stopped on purpose (by ``cancel``): any other end of a loop is a death
_STOPPING: weakref.WeakSet[asyncio.Task[None]] = weakref.WeakSet()


def _exit_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def spawn(
    coro: Coroutine[Any, Any, None], name: str, on_death: Callable[[], None] = _exit_process
) -> asyncio.Task[None]:
    """Start a loop meant to run forever; if it ever ends, other than by :func:`cancel`, the
    process exits (a supervisor restarts it) rather than limping on without, say, its relay.
    That includes a loop that returns, and one that ends cancelled without being asked to (a
    library's stray CancelledError): otherwise the process would stay up doing nothing."""
    task = asyncio.create_task(coro, name=name)

    def _done(t: asyncio.Task[None]) -> None:
        if t in _STOPPING:
            return
        exc: BaseException | None = None
        if t.cancelled():
            why = "was cancelled unasked"
        elif (exc := t.exception()) is not None:
            why = f"died: {exc!r}"
        else:
            why = "returned"
        logging.getLogger(__name__).error("background loop %s %s", name, why, exc_info=exc)
        on_death()

    task.add_done_callback(_done)
    return task


async def cancel(*tasks: asyncio.Task[None]) -> None:
    for t in tasks:
        _STOPPING.add(t)
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def serve(app: Any, host: str, port: int, log_level: str = "info") -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
