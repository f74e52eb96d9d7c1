"""``isoformat`` writes every time exactly as the strftime it replaced on the hot path: the
text is hashed into ledger entries, so one character off would break every chain after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jifen.kernel.contracts import isoformat

ZONES = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)


def _strftime(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.datetimes(min_value=datetime(1000, 1, 2), timezones=ZONES))
def test_the_same_text_as_strftime(ts: datetime) -> None:
    assert isoformat(ts) == _strftime(ts)


@pytest.mark.parametrize(
    "ts, text",
    [
        (datetime(2026, 12, 3, 17, 0, tzinfo=UTC), "2026-12-03T17:00:00.000000Z"),
        (datetime(2026, 12, 4, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=8))),
         "2026-12-03T17:02:03.000004Z"),
        (datetime(999, 5, 1, tzinfo=UTC), _strftime(datetime(999, 5, 1, tzinfo=UTC))),
    ],
)  # fmt: skip
def test_utc_with_microseconds_and_z(ts: datetime, text: str) -> None:
    assert isoformat(ts) == text


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        isoformat(datetime(2026, 12, 3))
