"""Verified tokens are remembered for their lifetime: expiry is still checked on every
request, a key replaced under its id is verified against again, and the memory is bounded."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import jifen.kernel.auth as auth
from jifen.kernel.auth import InvalidToken, TokenVerifier, issue_token


def test_a_verified_token_is_not_verified_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue_token(tmp_path, subject="a", role="app", org="jm")
    verifier = TokenVerifier(tmp_path)
    calls = []
    real = jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = verifier.verify(token)
    assert verifier.verify(token) is first and verifier.verify(token) is first
    assert len(calls) == 1


def test_expiry_is_checked_on_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue_token(tmp_path, subject="a", role="app", org="jm", ttl_seconds=60)
    verifier = TokenVerifier(tmp_path)
    assert verifier.verify(token).subject == "a"
    later = time.time() + 61
    monkeypatch.setattr(auth.time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime(later))
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)
    with pytest.raises(InvalidToken, match="expired"):  # and stays refused
        verifier.verify(token)


def test_a_key_replaced_under_its_id_is_verified_against_again(tmp_path: Path) -> None:
    token = issue_token(tmp_path, subject="a", role="app", org="jm")
    kid = (tmp_path / "current").read_text()
    verifier = TokenVerifier(tmp_path)
    assert verifier.verify(token).subject == "a"
    # the published key of that id is replaced by another (a compromised key swapped out)
    other = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "public" / f"{kid}.pem").write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    # a token naming an unknown key makes the verifier read the keys again
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.verify(issue_token(tmp_path / "theirs", subject="b", role="app", org="jm"))
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        verifier.verify(token)


def test_an_unchanged_key_set_re_read_keeps_what_was_verified(tmp_path: Path) -> None:
    token = issue_token(tmp_path, subject="a", role="app", org="jm")
    verifier = TokenVerifier(tmp_path)
    first = verifier.verify(token)
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.verify(issue_token(tmp_path / "theirs", subject="b", role="app", org="jm"))
    assert verifier.verify(token) is first


def test_the_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 3)
    tokens = [issue_token(tmp_path / "k", subject=f"s{i}", role="app", org="jm") for i in range(5)]
    verifier = TokenVerifier(tmp_path / "k")
    for t in tokens:
        verifier.verify(t)
    assert len(verifier._verified) == 3
    assert list(verifier._verified) == tokens[2:]
    # a failed verification is never remembered
    with pytest.raises(InvalidToken):
        verifier.verify(tokens[0][:-2] + "xx")
    assert tokens[0][:-2] + "xx" not in verifier._verified


class _FrozenDatetime:
    """PyJWT's clock (``datetime.now``) at a given time."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self, tz: object = None) -> object:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.at, tz=UTC)

    def __getattr__(self, name: str) -> object:
        from datetime import datetime

        return getattr(datetime, name)
