"""The worker's hash of an entry (``hash_of_canonical``, no check, no copy) is the chain's
``entry_hash`` for every content ``canonical_content`` makes: the same keys, the same bytes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from jifen.points.domain.chain import CANONICAL_FIELDS, GENESIS, entry_hash, hash_of_canonical
from jifen.points.domain.ledger import Head, Kind, Posting, append, canonical_content


def _posting(kind: Kind, amount: int) -> Posting:
    completion = str(uuid.uuid4()) if kind in (Kind.CREDIT, Kind.REVERSAL) else None
    redemption = str(uuid.uuid4()) if kind in (Kind.DEBIT, Kind.REFUND) else None
    return Posting(
        str(uuid.uuid4()), "jifen.tasks.completion.verified.v1", "vol-1", kind, amount,
        "jiangmen-riders", "meal_delivery" if completion else None, str(uuid.uuid4()),
        completion, redemption, datetime(2026, 12, 3, 8, 0, 0, 12, tzinfo=UTC),
    )  # fmt: skip


@pytest.mark.parametrize(
    "kind, amount",
    [(Kind.CREDIT, 5), (Kind.REVERSAL, -5), (Kind.DEBIT, -3), (Kind.REFUND, 3),
     (Kind.ADJUSTMENT, -1)],
)  # fmt: skip
def test_the_fast_hash_is_the_chains(kind: Kind, amount: int) -> None:
    content = canonical_content(_posting(kind, amount), 7, 40, GENESIS)
    assert set(content) == set(CANONICAL_FIELDS)
    assert hash_of_canonical(content) == entry_hash(content)


def test_append_moves_the_head_as_before() -> None:
    head = Head("vol-1", 3, 10, 12, 2, GENESIS, "jiangmen-riders")
    new, entry = append(head, _posting(Kind.DEBIT, -4))
    assert new == Head("vol-1", 4, 6, 12, 6, entry.entry_hash, "jiangmen-riders")
    assert entry.entry_hash == entry_hash(entry.content())
    credit, e2 = append(new, _posting(Kind.CREDIT, 9))
    assert (credit.seq, credit.balance, credit.earned, credit.spent) == (5, 15, 21, 6)
    assert e2.prev_hash == entry.entry_hash
