"""Prometheus metrics shared by every service (``jifen_`` prefix, base units, bounded labels)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Figures per organisation (points issued, held and spent by each scheme, jobs and completions
# per scheme) say who runs which scheme and how much they owe: they are served on /metrics only
# to a scraper presenting the scrape credential (Prometheus: `authorization.credentials_file`).
# Everything else on /metrics is operational and open, as before.
ORG_REGISTRY = CollectorRegistry(auto_describe=True)
SCRAPE_TOKEN_FILE = "metrics-scrape-token"  # noqa: S105 - a file name, not the secret


def ensure_scrape_token(keys_dir: Path) -> Path:
    """The scrape credential of a deployment, made on first run beside the signing keys."""
    path = keys_dir / SCRAPE_TOKEN_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(32) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return path


def _scrape_token() -> str | None:
    token = os.environ.get("JIFEN_METRICS_TOKEN")
    if token:
        return token
    keys = os.environ.get("JIFEN_KEYS_DIR")
    if keys:
        path = Path(keys) / SCRAPE_TOKEN_FILE
        if path.exists():
            return path.read_text().strip() or None
    return None


def exposition(authorization: str | None) -> bytes:
    """What /metrics serves: the open figures, and the per-organisation ones behind the
    scrape credential (``Authorization: Bearer <token>``)."""
    body = generate_latest()
    token = _scrape_token()
    if token and authorization and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization[7:].strip().encode(), token.encode()):
            body += generate_latest(ORG_REGISTRY)
    return body


HTTP_REQUESTS = Counter(
    "jifen_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "jifen_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["service", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_CONSUMED = Counter(
    "jifen_kafka_events_consumed_total",
    "Events consumed and applied (or found already applied), by topic and type.",
    ["service", "topic", "type"],
)
EVENTS_PRODUCED = Counter(
    "jifen_kafka_events_produced_total",
    "Events published to the broker by the outbox relay, by topic and type.",
    ["service", "topic", "type"],
)
EVENTS_FAILED = Counter(
    "jifen_kafka_events_failed_total",
    "Attempts to apply consumed events that failed and were retried (database unavailable, "
    "a lock conflict), by service, topic and type; a refused or invalid event is dead-lettered "
    "instead (jifen_kafka_events_dead_lettered_total).",
    ["service", "topic", "type"],
)
DEAD_LETTERED = Counter(
    "jifen_kafka_events_dead_lettered_total",
    "Records sent to a dead-letter topic, by source topic and reason class.",
    ["topic", "reason"],
)
OUTBOX_PENDING = Gauge(
    "jifen_outbox_pending_events",
    "Events committed to the outbox and not yet published.",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "jifen_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox event (0 when empty).",
    ["service"],
)
CONSUMER_RESTARTS = Counter(
    "jifen_kafka_consumer_broker_forgot_total",
    "Times a consumer found the broker had forgotten its group's committed offsets (the "
    "embedded broker restarted) and re-read its partitions from the beginning; by group.",
    ["group"],
)
CONSUMER_LAG = Gauge(
    "jifen_kafka_consumer_lag_events",
    "Records behind the partition's end (high watermark), by consumer group, topic and "
    "partition: the broker's end offsets (ListOffsets, at most every 2 s) less the consumer's "
    "position. On the opt-in Tansu broker, whose end offsets are wrong, the high watermark "
    "carried by fetch responses is used instead; treat it as an estimate there.",
    ["group", "topic", "partition"],
)
LAG_EVERY = 2.0
T = TypeVar("T")
_lag_ends: dict[int, tuple[float, dict[Any, int]]] = {}
# the lag series each group's consumer in this process has set (a restarted consumer takes
# over its group's): those of partitions it no longer holds are removed
_lag_series: dict[str, set[tuple[str, str, str]]] = {}


_asking: dict[tuple[Any, ...], asyncio.Future[Any]] = {}


async def _within(
    key: tuple[Any, ...], ask: Callable[[], Awaitable[T]], seconds: float
) -> T | None:
    """The answer of ``ask()`` if it comes within ``seconds``, else None — without waiting for
    it to wind down: aiokafka's ``end_offsets`` of a topic that has vanished retries for ever
    and does not end when cancelled, so ``asyncio.wait_for`` around it never returned and the
    consumer's loop stopped there (tests/integration/kernel/test_broker_forgets.py). One
    question per key is in flight at a time; a later call waits on the same one."""
    fut = _asking.get(key)
    if fut is None or fut.done():
        fut = _asking[key] = asyncio.ensure_future(ask())
        fut.add_done_callback(_forget)
    done, _ = await asyncio.wait({fut}, timeout=seconds)
    if not done:
        return None
    _asking.pop(key, None)
    try:
        return cast(T, fut.result())
    except (KafkaError, AssertionError, asyncio.CancelledError):
        return None  # AssertionError: aiokafka's "Partition is not assigned" after a rebalance


def _forget(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved, so an abandoned failure is not logged as unhandled
    for key, f in list(_asking.items()):
        if f is fut:
            del _asking[key]


async def observe_lag(consumer: Any, group: str) -> None:
    """Set the lag gauge for the partitions ``consumer`` (an AIOKafkaConsumer) holds: the
    larger of the broker's end offset (asked at most every ``LAG_EVERY`` seconds) and the high
    watermark of the latest fetch, less the consumer's position. The series of partitions it
    no longer holds (moved to another member by a rebalance) are removed: a partition's lag
    is reported by the member that holds it, never also by one that held it once."""
    held = list(consumer.assignment())
    now_held = {(group, tp.topic, str(tp.partition)) for tp in held}
    for gone in _lag_series.get(group, set()) - now_held:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(*gone)
    _lag_series[group] = now_held
    if not held:
        return
    now = asyncio.get_running_loop().time()
    asked, ends = _lag_ends.get(id(consumer), (0.0, {}))
    if now - asked >= LAG_EVERY and os.environ.get("JIFEN_BROKER", "").lower() != "tansu":
        ends = (
            await _within(("ends", id(consumer)), lambda: consumer.end_offsets(held), 2.0) or ends
        )
        _lag_ends[id(consumer)] = (now, ends)
    for tp in held:
        if tp not in consumer.assignment():
            continue  # moved away by a rebalance during an await above (highwater() would raise)
        marks = [m for m in (ends.get(tp), consumer.highwater(tp)) if m is not None]
        if not marks:
            continue
        position = await _within(("at", id(consumer), tp), partial(consumer.position, tp), 0.5)
        if position is None:
            continue
        CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, max(marks) - position))
