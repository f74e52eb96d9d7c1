"""Invitation rules without a database: tokens are random and kept as hashes, and an invitation
never carries a role beyond what its issuer may hand out."""

from __future__ import annotations

import pytest

from jifen.tasks.domain import invitations as rules


def test_tokens_are_long_random_and_stored_as_their_hash() -> None:
    a, b = rules.new_token(), rules.new_token()
    assert a != b and len(a) >= 43
    assert rules.token_hash(a) == rules.token_hash(a) != rules.token_hash(b)
    assert a.encode() not in rules.token_hash(a)


@pytest.mark.parametrize(
    ("issuer", "roles", "ok"),
    [
        ("officer", ["volunteer"], True),
        ("officer", ["volunteer", "merchant"], True),
        ("officer", ["volunteer", "officer"], False),
        ("officer", ["admin"], False),
        ("admin", ["officer", "volunteer"], True),
        ("admin", ["admin"], False),
        ("admin", ["auditor"], False),
        ("volunteer", ["volunteer"], False),
    ],
)
def test_the_issuers_ceiling(issuer: str, roles: list[str], ok: bool) -> None:
    if ok:
        rules.check_ceiling(issuer, roles)
    else:
        with pytest.raises(rules.BeyondIssuer) as refused:
            rules.check_ceiling(issuer, roles)
        assert refused.value.status == 403


def test_why_a_known_token_gives_nothing() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    assert rules.why_not(now, None, True).reason == "invitation_used"
    assert rules.why_not(None, now, True).reason == "invitation_revoked"
    assert rules.why_not(None, None, True).reason == "invitation_expired"
    assert all(r.status == 410 for r in (rules.why_not(now, None, False),))
