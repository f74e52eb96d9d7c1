"""Token buckets, with the clock passed in: a burst passes, the next write waits exactly as
long as the rate says, keys never share a bucket, and Retry-After is whole seconds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jifen.kernel.ratelimit import TokenBuckets, retry_after_header


def test_a_burst_passes_then_the_rate_holds() -> None:
    b = TokenBuckets()
    assert all(b.take("app-a", rate=1.0, burst=5, now=0.0) == 0.0 for _ in range(5))
    wait = b.take("app-a", rate=1.0, burst=5, now=0.0)
    assert wait == 1.0
    assert b.take("app-a", rate=1.0, burst=5, now=0.5) == 0.5
    assert b.take("app-a", rate=1.0, burst=5, now=1.0) == 0.0


def test_one_key_flooding_leaves_another_untouched() -> None:
    b = TokenBuckets()
    for _ in range(100):
        b.take("app-noisy", rate=0.5, burst=3, now=10.0)
    assert b.take("app-noisy", rate=0.5, burst=3, now=10.0) > 0
    assert b.take("app-quiet", rate=0.5, burst=3, now=10.0) == 0.0


def test_no_rate_means_no_limit() -> None:
    b = TokenBuckets()
    assert all(b.take("k", rate=0, burst=0, now=0.0) == 0.0 for _ in range(1000))


@given(
    rate=st.floats(min_value=0.01, max_value=1000),
    burst=st.integers(min_value=1, max_value=1000),
    gaps=st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    b = TokenBuckets()
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        if b.take("k", rate=rate, burst=burst, now=now) == 0.0:
            allowed += 1
    assert allowed <= burst + rate * now + 1e-6


@given(st.floats(min_value=1e-9, max_value=1e6))
def test_retry_after_is_a_positive_whole_number_of_seconds_not_before_the_wait(w: float) -> None:
    header = retry_after_header(w)
    assert header.isdigit() and int(header) >= 1 and int(header) >= w


def test_the_key_table_is_bounded() -> None:
    b = TokenBuckets(max_keys=10)
    for i in range(1000):
        b.take(f"k{i}", rate=1.0, burst=1, now=float(i))
    assert len(b._buckets) <= 10
