"""Tokens: signed, expiring, bound to a key id; rotation keeps old tokens valid."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from jifen.kernel.auth import InvalidToken, Role, TokenVerifier, issue_token, rotate_signing_key


def test_a_token_names_subject_role_and_organisation(tmp_path: Path) -> None:
    token = issue_token(tmp_path, subject="officer-li", role="officer", org="jm")
    who = TokenVerifier(tmp_path).verify(token)
    assert (who.subject, who.role, who.org) == ("officer-li", Role.OFFICER, "jm")
    assert jwt.get_unverified_header(token)["kid"] == (tmp_path / "current").read_text()


def test_rotation_keeps_earlier_tokens_valid_and_new_ones_use_the_new_key(tmp_path: Path) -> None:
    old = issue_token(tmp_path, subject="a", role="app", org="jm")
    verifier = TokenVerifier(tmp_path)
    new_kid = rotate_signing_key(tmp_path)
    new = issue_token(tmp_path, subject="a", role="app", org="jm")
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert verifier.verify(old).subject == "a"
    assert verifier.verify(new).subject == "a"  # unknown kid: the verifier re-reads the keys


def test_tampered_expired_and_foreign_tokens_are_refused(tmp_path: Path) -> None:
    good = issue_token(tmp_path / "ours", subject="a", role="app", org="jm")
    verifier = TokenVerifier(tmp_path / "ours")
    head, body, sig = good.split(".")
    with pytest.raises(InvalidToken):
        verifier.verify(f"{head}.{body}x.{sig}")
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(
            issue_token(tmp_path / "ours", subject="a", role="app", org="jm", ttl_seconds=-1)
        )
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.verify(issue_token(tmp_path / "theirs", subject="a", role="admin", org="jm"))


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": 4_102_444_800 + 100 * 365 * 86400}, "days are accepted"),  # a century ahead
        ({"org": None}, "org must be a non-empty id"),
        ({"org": ["jm", "other"]}, "org must be a non-empty id"),
        ({"org": ""}, "org must be a non-empty id"),
        ({"sub": ""}, "sub must be a non-empty id"),
        ({"sub": "a b"}, "sub must be a non-empty id"),
        ({"role": ["admin"]}, "bad claims"),
    ],
)
def test_tokens_that_live_for_years_or_name_no_one_are_refused(
    tmp_path: Path, claims: dict[str, object], why: str
) -> None:
    token = issue_token(tmp_path, subject="a", role="app", org="jm", extra_claims=claims)
    with pytest.raises(InvalidToken, match=why):
        TokenVerifier(tmp_path).verify(token)


def test_the_longest_lifetime_is_configurable_and_a_week_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    week = issue_token(tmp_path, subject="a", role="app", org="jm", ttl_seconds=7 * 86400)
    assert TokenVerifier(tmp_path).verify(week).subject == "a"
    monkeypatch.setenv("JIFEN_MAX_TOKEN_TTL_SECONDS", str(3600))
    with pytest.raises(InvalidToken, match=r"at most 0\.0416667 days"):
        TokenVerifier(tmp_path).verify(week)
