"""Running a Jifen process: JSON logs, background loops that must not die quietly, uvicorn."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import random
import signal
import sys
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import uvicorn

# the X-Request-ID of the HTTP request being handled (set by jifen.kernel.web): every log line
# written while handling it carries it, the access log line too
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jifen_request_id", default=None
)
# what a caller may pass in ``extra={...}`` and find as a field of the JSON line
LOG_FIELDS = (
    "service",
    "event_id",
    "cause_event_id",
    "account_id",
    "event_ids",
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "duration_ms",
    "client",
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the event id when the caller passes ``extra={'event_id'}``
    and the request id of the HTTP request being handled, if any."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            doc["request_id"] = request_id
        for key in LOG_FIELDS:
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
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # ours is jifen.access


def backoff(attempt: int, *, base: float = 0.2, cap: float = 5.0) -> float:
    """How long to wait before retry number ``attempt`` (0 for the first): exponential up to
    ``cap``, with "equal jitter" (between half and all of it, at random), so that replicas
    that failed together (a PostgreSQL restart, a broker election) do not retry in lockstep
    and knock the recovering server over again."""
    return equal_jitter(min(cap, base * 2.0 ** min(attempt, 32)))


def equal_jitter(seconds: float) -> float:
    """Between half of ``seconds`` and all of it, at random: a retry wait that replicas failing
    together do not share (never longer than the wait it replaces)."""
    return seconds / 2 + random.uniform(0, seconds / 2)


def jittered(seconds: float, spread: float = 0.2) -> float:
    """``seconds`` give or take ``spread`` of it, at random: a periodic pass (a poll, a
    refresh) of many replicas started together drifts apart instead of hitting at once."""
    return seconds * (1 + random.uniform(-spread, spread))


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


def keys_problem(app: Any) -> str | None:
    """What stops ``app`` (made by ``web.create_app``) from starting with the keys in
    ``$JIFEN_KEYS_DIR``; None if nothing."""
    from pathlib import Path

    from jifen.kernel.auth import startup_key_problem
    from jifen.kernel.settings import ServiceSettings

    state = getattr(app, "state", None)
    service = getattr(state, "service", None)
    if service is None or getattr(state, "needs_keys", True) is False:
        return None
    env = os.environ.get("JIFEN_KEYS_DIR")
    keys_dir = (
        Path(env)
        if env
        else ServiceSettings.model_fields["keys_dir"].get_default(call_default_factory=True)
    )
    return startup_key_problem(str(service), Path(keys_dir))


def serve(app: Any, host: str, port: int, log_level: str = "info") -> None:
    """Run ``app`` under uvicorn; a process missing its keys exits at once (status 2) with
    one line on stderr saying which key and what to do, not a traceback from its first
    request or its lifespan."""
    problem = keys_problem(app)
    if problem is not None:
        print(problem, file=sys.stderr, flush=True)
        sys.exit(2)
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
