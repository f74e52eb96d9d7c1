"""The ledger's pure rules: chaining, planning a batch, balances as sums of entries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.points.domain.chain import GENESIS, entry_hash
from jifen.points.domain.ledger import (
    Head,
    ImpossibleEvent,
    Kind,
    Posting,
    adjustment_refusal,
    append,
    plan_batch,
    posting_from_event,
)

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def posting(
    account: str, kind: Kind, amount: int, ref: str | None = None, org: str = "org"
) -> Posting:
    ref = ref or str(uuid.uuid4())
    about_completion = kind in (Kind.CREDIT, Kind.REVERSAL)
    return Posting(
        event_id=str(uuid.uuid4()),
        event_type="t",
        account_id=account,
        kind=kind,
        amount=amount,
        org_id=org,
        category="meal_delivery" if about_completion else None,
        job_id=None,
        completion_id=ref if about_completion else None,
        redemption_id=None if about_completion else ref,
        occurred_at=T0,
    )


def test_each_entry_chains_to_its_predecessor() -> None:
    head = Head("vol-1")
    head, first = append(head, posting("vol-1", Kind.CREDIT, 20))
    head, second = append(head, posting("vol-1", Kind.DEBIT, -5))
    assert first.prev_hash == GENESIS and second.prev_hash == first.entry_hash
    assert (first.account_seq, second.account_seq) == (1, 2)
    assert (head.balance, head.earned, head.spent, head.hash) == (15, 20, 5, second.entry_hash)
    assert entry_hash(second.content()) == second.entry_hash


def test_changing_any_field_changes_the_hash() -> None:
    _, e = append(Head("vol-1"), posting("vol-1", Kind.CREDIT, 20))
    content = e.content()
    for field, other in [
        ("amount", 21),
        ("account_id", "vol-2"),
        ("kind", "debit"),
        ("prev_hash", "1" * 64),
        ("occurred_at", "2026-11-01T03:00:01.000000Z"),
    ]:
        assert entry_hash({**content, field: other}) != e.entry_hash, field


def test_a_redelivered_event_is_a_duplicate_not_an_entry() -> None:
    p = posting("vol-1", Kind.CREDIT, 10)
    plan = plan_batch([p, p], {}, set(), set())
    assert len(plan.entries) == 1 and plan.duplicates == [p]
    again = plan_batch([p], {}, {p.event_id}, set())
    assert again.entries == [] and again.duplicates == [p]


def test_rules_refuse_reversals_refunds_and_second_credits_without_grounds() -> None:
    credit = posting("vol-1", Kind.CREDIT, 10, ref="c1")
    second_credit = posting("vol-1", Kind.CREDIT, 10, ref="c1")
    orphan_reversal = posting("vol-1", Kind.REVERSAL, -10, ref="c2")
    orphan_refund = posting("vol-1", Kind.REFUND, 10, ref="r1")
    reversal = posting("vol-1", Kind.REVERSAL, -10, ref="c1")
    plan = plan_batch(
        [credit, second_credit, orphan_reversal, orphan_refund, reversal], {}, set(), set()
    )
    assert [e.posting for e in plan.entries] == [credit, reversal]
    reasons = {p.event_id: r for p, r in plan.refused}
    assert "already has a credit" in reasons[second_credit.event_id]
    assert "no credit entry" in reasons[orphan_reversal.event_id]
    assert "no debit entry" in reasons[orphan_refund.event_id]


def test_event_mapping_refuses_a_subject_that_is_not_the_account() -> None:
    event = {
        "id": str(uuid.uuid4()),
        "type": "jifen.tasks.completion.verified.v1",
        "subject": "vol-2",
        "data": {"account_id": "vol-1", "points": 5, "org_id": "o", "completion_id": "x"},
    }
    with pytest.raises(ImpossibleEvent, match="subject"):
        posting_from_event(event, T0)


def test_one_person_has_a_separate_chain_and_balance_in_each_organisation() -> None:
    a1 = posting("vol-1", Kind.CREDIT, 30, org="org-a")
    b1 = posting("vol-1", Kind.CREDIT, 5, org="org-b")
    b_debit = posting("vol-1", Kind.DEBIT, -20, org="org-b")  # B's reward spends B's points
    a2 = posting("vol-1", Kind.CREDIT, 1, org="org-a")
    plan = plan_batch([a1, b1, b_debit, a2], {}, set(), set())
    got = [(e.posting.org_id, e.account_seq, e.balance_after) for e in plan.entries]
    assert got == [("org-a", 1, 30), ("org-b", 1, 5), ("org-b", 2, -15), ("org-a", 2, 31)]
    a, b = plan.heads[("org-a", "vol-1")], plan.heads[("org-b", "vol-1")]
    assert (a.balance, b.balance) == (31, -15)
    # each chain links only to its own organisation's entries
    assert plan.entries[3].prev_hash == plan.entries[0].entry_hash
    assert plan.entries[1].prev_hash == GENESIS
    with pytest.raises(ValueError, match="another organisation"):
        append(a, b1)


def test_the_two_person_rule_compares_normalised_identities() -> None:
    def why(requested_by: str, approver: str | None, account: str = "vol-1", bal: int = 0,
            amount: int = 5) -> str | None:  # fmt: skip
        r = adjustment_refusal(
            requested_by=requested_by,
            approver=approver,
            account_id=account,
            balance=bal,
            amount=amount,
        )
        return r[0] if r else None

    assert why("adm-a", "ADM-A") == "same_person"
    assert why("adm-a", " adm-a ") == "same_person"
    assert why("straße", "STRASSE") == "same_person"  # Unicode case folding
    assert why("adm-a", "Vol-1") == "beneficiary"
    assert why("adm-a", "adm-b") is None
    assert why("adm-a", None, bal=10, amount=-11) == "adjustment_overdraws"
    assert why("adm-a", "adm-b", bal=10, amount=-10) is None  # to exactly zero is fine
    assert why("adm-a", None, bal=0, amount=-1_000_000) == "adjustment_overdraws"
    assert why("adm-a", None, bal=-5, amount=3) is None  # a credit may lift a freeze


moves = st.lists(
    st.tuples(
        st.sampled_from(["vol-1", "vol-2", "vol-3"]),
        st.sampled_from([Kind.CREDIT, Kind.DEBIT]),
        st.integers(min_value=1, max_value=10_000),
        st.sampled_from(["org-a", "org-b"]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(moves, st.integers(min_value=1, max_value=7))
def test_balance_is_the_sum_of_entries_however_the_batches_are_cut(
    batch: list[tuple[str, Kind, int, str]], cut: int
) -> None:
    postings = [posting(a, k, n if k is Kind.CREDIT else -n, org=o) for a, k, n, o in batch]
    # apply with redeliveries and in slices, as a worker would after crashes and rebalances
    heads: dict[tuple[str, str], Head] = {}
    applied: set[str] = set()
    refs: set[tuple[str, str, Kind]] = set()
    entries = []
    for i in range(0, len(postings), cut):
        chunk = postings[max(0, i - 2) : i + cut]  # overlaps: the last two again
        plan = plan_batch(chunk, heads, applied, refs)
        heads = plan.heads
        for e in plan.entries:
            applied.add(e.posting.event_id)
            refs.add((*e.posting.reference, e.posting.kind))
        entries += plan.entries
    assert len(entries) == len(postings)
    for (org, account), head in heads.items():
        mine = [e for e in entries if (e.posting.org_id, e.posting.account_id) == (org, account)]
        assert head.balance == sum(e.posting.amount for e in mine)
        assert [e.account_seq for e in mine] == list(range(1, len(mine) + 1))
        assert all(isinstance(e.posting.amount, int) for e in mine)
        assert head.earned - head.spent == head.balance
