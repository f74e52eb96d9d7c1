"""Background loops that end unasked take their process down; a stray CancelledError from
aiokafka's consumer.stop() does not end a consumer loop (jifen.kernel.runtime and kafka)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jifen.kernel.kafka import stop_consumer
from jifen.kernel.runtime import cancel, spawn


async def _run(coro: Any) -> list[str]:
    deaths: list[str] = []
    task = spawn(coro, "loop", on_death=lambda: deaths.append("died"))
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # let the done-callback run
    return deaths


async def test_a_loop_that_raises_is_a_death() -> None:
    async def boom() -> None:
        raise RuntimeError("no")

    assert await _run(boom()) == ["died"]


async def test_a_loop_cancelled_by_a_library_not_by_us_is_a_death() -> None:
    async def stray() -> None:
        raise asyncio.CancelledError  # what aiokafka's Fetcher.close let escape

    assert await _run(stray()) == ["died"]


async def test_a_loop_that_returns_is_a_death() -> None:
    async def done() -> None:
        return None

    assert await _run(done()) == ["died"]


async def test_a_loop_stopped_by_cancel_is_not_a_death() -> None:
    deaths: list[str] = []
    task = spawn(asyncio.sleep(3600), "loop", on_death=lambda: deaths.append("died"))
    await asyncio.sleep(0)
    await cancel(task)
    await asyncio.sleep(0)
    assert deaths == []


class _StopRaises:
    """aiokafka 0.14's consumer.stop() when its fetcher's pending tasks were cancelled."""

    def __init__(self) -> None:
        self.client_closed = False
        self._client = self

    async def stop(self) -> None:
        raise asyncio.CancelledError

    async def close(self) -> None:
        self.client_closed = True


async def test_stop_consumer_swallows_a_stray_cancellation_and_closes_the_client() -> None:
    consumer = _StopRaises()
    await stop_consumer(consumer)  # type: ignore[arg-type]
    assert consumer.client_closed


async def test_stop_consumer_lets_our_own_cancellation_through() -> None:
    entered = asyncio.Event()

    class _Slow(_StopRaises):
        async def stop(self) -> None:
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(stop_consumer(_Slow()))  # type: ignore[arg-type]
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_backoff_grows_to_its_cap_and_never_retries_in_lockstep() -> None:
    from jifen.kernel.runtime import backoff

    for attempt in range(12):
        ceiling = min(5.0, 0.2 * 2**attempt)
        waits = [backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempt, min(waits), max(waits))
        # replicas failing together spread out: 200 of them draw many different waits
        assert len({round(w, 6) for w in waits}) > 150, attempt
    assert max(backoff(10_000) for _ in range(50)) <= 5.0  # no overflow, still capped


def test_a_periodic_pass_drifts_within_its_spread() -> None:
    from jifen.kernel.runtime import jittered

    waits = [jittered(5.0) for _ in range(500)]
    assert all(4.0 <= w <= 6.0 for w in waits)
    assert max(waits) - min(waits) > 1.0  # really spread, not a fixed 5 s


def test_the_consumers_retry_waits_are_spread_and_never_longer_than_before() -> None:
    """The kernel consumer and the ledger worker retry a database outage and a lost broker
    after equal_jitter(wait): between half and all of the wait they used before."""
    import inspect

    from jifen.kernel import consumer
    from jifen.kernel.runtime import equal_jitter
    from jifen.points import worker

    waits = [equal_jitter(2.0) for _ in range(300)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert len({round(w, 6) for w in waits}) > 250
    for module in (consumer, worker):
        source = inspect.getsource(module)
        assert "asyncio.sleep(delay)" not in source, module.__name__
        assert "asyncio.sleep(1.0)" not in source, module.__name__
    # the ledger worker retries through the kernel consumer's until_committed (one fault path)
    assert "equal_jitter(" in inspect.getsource(consumer)
    assert "until_committed(" in inspect.getsource(worker)
