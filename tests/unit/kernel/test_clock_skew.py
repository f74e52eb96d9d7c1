"""Clock skew between services, within a bound: an event or a token from a clock running a
little ahead is accepted as sent; one further ahead than the bound is refused with a reason
that names the skew and the bound. The past is refused only before 2000 (redeliveries are old)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jifen.kernel.auth import InvalidToken, TokenVerifier, issue_token
from jifen.kernel.settings import ServiceSettings
from jifen.points.domain.ledger import ImpossibleEvent, check_clock_skew

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("ahead", [0, 1, 90, 299.9, 300])
def test_an_event_ahead_by_at_most_the_bound_is_accepted(ahead: float) -> None:
    check_clock_skew(NOW + timedelta(seconds=ahead), NOW, 300)


@pytest.mark.parametrize("behind", [1, 3600, 90 * 24 * 3600])
def test_an_event_from_the_past_is_never_refused_for_skew(behind: float) -> None:
    check_clock_skew(NOW - timedelta(seconds=behind), NOW, 300)


@pytest.mark.parametrize("year", [1, 999, 1999])
def test_an_event_from_before_the_system_could_exist_is_refused(year: int) -> None:
    with pytest.raises(ImpossibleEvent, match="before 2000-01-01"):
        check_clock_skew(datetime(year, 12, 31, tzinfo=UTC), NOW, 300)


def test_an_event_beyond_the_bound_is_refused_naming_skew_and_bound() -> None:
    with pytest.raises(ImpossibleEvent, match=r"clock skew: .* 301 s ahead .* allowed 300 s"):
        check_clock_skew(NOW + timedelta(seconds=301), NOW, 300)
    with pytest.raises(ImpossibleEvent, match="allowed 5 s"):
        check_clock_skew(NOW + timedelta(seconds=6), NOW, 5)


def test_the_bound_is_a_setting_with_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().max_clock_skew_seconds == 300
    monkeypatch.setenv("JIFEN_MAX_CLOCK_SKEW_SECONDS", "30")
    assert ServiceSettings().max_clock_skew_seconds == 30


def _token_at(keys: Path, issued_at: float, **extra: object) -> str:
    """A token whose issuer's clock reads ``issued_at``."""
    claims: dict[str, object] = {"iat": int(issued_at), **extra}
    return issue_token(
        keys, subject="app-x", role="app", org="jm", ttl_seconds=3600, extra_claims=claims
    )


def test_a_token_from_a_clock_ahead_within_the_bound_is_accepted(tmp_path: Path) -> None:
    verifier = TokenVerifier(tmp_path, max_clock_skew_seconds=300)
    ahead = time.time() + 120
    assert verifier.verify(_token_at(tmp_path, ahead, nbf=int(ahead))).subject == "app-x"


def test_a_token_from_too_far_in_the_future_is_refused(tmp_path: Path) -> None:
    verifier = TokenVerifier(tmp_path, max_clock_skew_seconds=300)
    ahead = time.time() + 900
    with pytest.raises(InvalidToken, match=r"iat is \d+ s in the future.*clock skew of 300 s"):
        verifier.verify(_token_at(tmp_path, ahead, exp=int(ahead) + 3600))
    with pytest.raises(InvalidToken, match=r"nbf is \d+ s in the future"):
        verifier.verify(_token_at(tmp_path, time.time(), nbf=int(ahead)))


def test_the_skew_bound_never_extends_expiry(tmp_path: Path) -> None:
    verifier = TokenVerifier(tmp_path, max_clock_skew_seconds=300)
    expired = issue_token(tmp_path, subject="a", role="app", org="jm", ttl_seconds=-5)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(expired)


def test_the_verifier_reads_the_bound_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIFEN_MAX_CLOCK_SKEW_SECONDS", "10")
    verifier = TokenVerifier(tmp_path)
    assert verifier.max_clock_skew_seconds == 10
    with pytest.raises(InvalidToken, match="clock skew of 10 s"):
        verifier.verify(_token_at(tmp_path, time.time() + 60))
