"""The offline verifier's rules on exports built in memory with the real domain functions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.points.audit.domain.canonical import leaf_bytes
from jifen.points.audit.domain.checkpoint import Checkpoint, sign_checkpoint
from jifen.points.audit.domain.merkle import leaf_hash, root_of
from jifen.points.audit.domain.verify import EXPORT_FORMAT, Result, Verifier
from jifen.points.audit.domain.witness import refusal
from jifen.points.domain.ledger import Head, Kind, Posting, append

KEY = Ed25519PrivateKey.generate()
KEYS = {"k1": KEY.public_key()}
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def posting(account: str, kind: Kind, amount: int, ref: str | None = None) -> Posting:
    completion = ref if kind in (Kind.CREDIT, Kind.REVERSAL) else None
    redemption = ref if kind in (Kind.DEBIT, Kind.REFUND) else None
    if completion is None and redemption is None:
        completion = str(uuid.uuid4())
    return Posting(
        str(uuid.uuid4()),
        "jifen.tasks.completion.verified.v1",
        account,
        kind,
        amount,
        "org-1",
        None,
        None,
        completion,
        redemption,
        T0,
    )


def build(postings: list[Posting]) -> list[dict[str, Any]]:
    """Entries as the export carries them, chained by the real ledger domain."""
    heads: dict[str, Head] = {}
    out = []
    for i, p in enumerate(postings, start=1):
        head, e = append(heads.get(p.account_id) or Head(p.account_id), p)
        heads[p.account_id] = head
        content = e.content()
        content.update(
            entry_id=i,
            cause_type=p.event_type,
            recorded_at=(T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            entry_hash=e.entry_hash,
        )
        out.append(content)
    return out


def checkpoint(entries: list[dict[str, Any]], size: int | None = None) -> Checkpoint:
    n = len(entries) if size is None else size
    root = root_of([leaf_hash(leaf_bytes(e)) for e in entries[:n]])
    return sign_checkpoint(KEY, Checkpoint(n, root, "2026-10-02T00:00:00.000000Z", "k1"))


def run(
    entries: list[dict[str, Any]],
    cp: Checkpoint | None = None,
    saved: list[Checkpoint] | None = None,
    end: int | None = None,
) -> Result:
    cp = cp or checkpoint(entries)
    v = Verifier(KEYS, saved or [])
    v.feed_header(
        {
            "format": EXPORT_FORMAT,
            "start": 0,
            "end": end or len(entries),
            "checkpoint": cp.to_json(),
        }
    )
    for i, e in enumerate(entries):
        v.feed({"position": i, "leaf_hash": leaf_hash(leaf_bytes(e)).hex(), "entry": e})
    return v.finish()


def found(r: Result) -> list[tuple[str, int | None]]:
    return [(f.code, f.entry_id) for f in r.findings]


def good_ledger() -> list[dict[str, Any]]:
    return build(
        [
            posting("a", Kind.CREDIT, 50, "c1"),
            posting("b", Kind.CREDIT, 20, "c2"),
            posting("a", Kind.DEBIT, -30, "r1"),
            posting("a", Kind.REFUND, 30, "r1"),
            posting("b", Kind.REVERSAL, -20, "c2"),
        ]
    )


def test_a_good_ledger_verifies_and_balances_are_recomputed() -> None:
    r = run(good_ledger())
    assert r.ok, found(r)
    assert (r.account("a").balance, r.account("a").earned, r.account("a").spent) == (50, 50, 0)
    assert r.account("b").balance == 0 and r.tree_size == 5


def test_below_zero_and_rule_breaks_are_flagged() -> None:
    entries = build(
        [
            posting("a", Kind.CREDIT, 10, "c1"),
            posting("a", Kind.DEBIT, -30, "r1"),  # overdraft
            posting("a", Kind.REVERSAL, -5, "c9"),  # reversal of a credit that never was
            posting("a", Kind.CREDIT, 10, "c1"),  # second credit for c1
        ]
    )
    entries[3]["cause_event_id"] = entries[0]["cause_event_id"]  # same event applied twice
    r = run(entries)
    assert ("below_zero", 2) in found(r)
    assert ("orphan_reversal", 3) in found(r)
    assert ("duplicate_reference", 4) in found(r)
    assert ("duplicate_cause", 4) in found(r)


def test_a_reversal_below_zero_is_a_recorded_freeze_not_a_finding() -> None:
    entries = build(
        [
            posting("a", Kind.CREDIT, 30, "c1"),
            posting("a", Kind.DEBIT, -25, "r1"),
            posting("a", Kind.REVERSAL, -30, "c1"),  # the credit was wrong; spent already
            posting("a", Kind.CREDIT, 40, "c2"),  # earns it back: no longer frozen
        ]
    )
    r = run(entries)
    assert r.ok, found(r)
    assert (r.account("a").min_balance, r.account("a").frozen_entries) == (-25, 1)
    assert r.account("a").balance == 15


def test_signatures_and_saved_checkpoints_are_checked() -> None:
    entries = good_ledger()
    forged = Checkpoint(5, bytes(32), "2026-10-02T00:00:00Z", "k1", bytes(64))
    assert ("bad_signature", None) in found(run(entries, cp=forged))
    other_key = Ed25519PrivateKey.generate()
    unknown = sign_checkpoint(other_key, Checkpoint(5, bytes(32), "t", "k9"))
    assert any("unknown key 'k9'" in f.message for f in run(entries, cp=unknown).findings)
    # the union holds a checkpoint of 5 entries but is shown only 3: history was cut
    r = run(entries[:3], saved=[checkpoint(entries)])
    assert [f.code for f in r.findings] == ["ledger_shrank"]
    # a signed checkpoint of the same size with another root: a split view
    a = checkpoint(entries, 3)
    b = sign_checkpoint(KEY, Checkpoint(3, bytes(32), "t2", "k1"))
    codes = {f.code for f in run(entries, saved=[a, b]).findings}
    assert {"split_view", "root_mismatch"} <= codes
    # an export cut short of its own header
    assert "truncated_export" in {
        f.code for f in run(entries[:4], checkpoint(entries), end=5).findings
    }


def test_a_witness_refuses_what_it_cannot_prove() -> None:
    entries = good_ledger()
    old, new = checkpoint(entries, 3), checkpoint(entries)
    assert refusal(None, new, [], KEYS) is None
    assert "smaller" in (refusal(new, old, [], KEYS) or "")
    assert "NOT consistent" in (refusal(old, new, [], KEYS) or "")  # no proof, no cosignature
    same_size_other_root = sign_checkpoint(KEY, Checkpoint(3, bytes(32), "t", "k1"))
    assert "NOT consistent" in (refusal(old, same_size_other_root, [], KEYS) or "")
    bad = Checkpoint(5, new.root_hash, new.issued_at, "k1", bytes(64))
    assert "signature does not verify" in (refusal(old, bad, [], KEYS) or "")


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_any_single_tampering_is_caught_and_names_the_entry(data: st.DataObject) -> None:
    """Random ledgers, one random alteration of one entry as the operator's database would
    hold it (the tree's leaf hashes and the signed checkpoint unchanged): always caught, and
    the altered entry is named."""
    n = data.draw(st.integers(2, 25))
    accounts = data.draw(st.lists(st.sampled_from("abc"), min_size=n, max_size=n))
    entries = build([posting(a, Kind.CREDIT, 1 + i) for i, a in enumerate(accounts)])
    leaves = [leaf_hash(leaf_bytes(e)) for e in entries]
    cp = checkpoint(entries)
    victim = data.draw(st.integers(0, n - 1))
    field = data.draw(
        st.sampled_from(
            [
                "amount",
                "balance_after",
                "account_seq",
                "prev_hash",
                "entry_hash",
                "cause_event_id",
                "occurred_at",
                "recorded_at",
                "entry_id",
                "kind",
            ]
        )
    )
    tampered = [dict(e) for e in entries]
    e = tampered[victim]
    if isinstance(e[field], int):
        e[field] += 1
    elif field == "kind":
        e[field] = "refund"
    else:
        e[field] = e[field][:-1] + ("0" if e[field][-1] != "0" else "1")
    v = Verifier(KEYS)
    v.feed_header({"format": EXPORT_FORMAT, "start": 0, "end": n, "checkpoint": cp.to_json()})
    for i, x in enumerate(tampered):
        v.feed({"position": i, "leaf_hash": leaves[i].hex(), "entry": x})
    r = v.finish()
    assert not r.ok
    assert victim in {f.position for f in r.findings}, (field, [str(f) for f in r.findings])
    if field != "entry_id":
        assert entries[victim]["entry_id"] in {
            f.entry_id for f in r.findings if f.position == victim
        }


# --- the legacy cutover (migration 0011): per account_id up to it, per (org, account) after


def in_org(p: Posting, org: str) -> Posting:
    return replace(p, org_id=org)


def build_across_cutover(
    legacy: list[Posting], new: list[Posting]
) -> tuple[list[dict[str, Any]], int]:
    """Legacy entries chained per bare account (the old write path), then new ones per
    (org, account), each continuing from its org's last legacy entry of the account (what
    the migration's rebuilt projection hands the new write path). Returns (entries, cutover)."""
    per_account: dict[str, Head] = {}
    per_org: dict[tuple[str, str], Head] = {}
    out: list[dict[str, Any]] = []

    def add(p: Posting, head: Head) -> Head:
        new_head, e = append(head, p)
        content = e.content()
        n = len(out) + 1
        content.update(
            entry_id=n,
            cause_type=p.event_type,
            recorded_at=(T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            entry_hash=e.entry_hash,
        )
        out.append(content)
        return new_head

    for p in legacy:
        head = add(p, per_account.get(p.account_id) or Head(p.account_id))
        per_account[p.account_id] = head
        key = (p.org_id, p.account_id)
        before = per_org.get(key) or Head(p.account_id, org_id=p.org_id)
        per_org[key] = replace(
            before, seq=head.seq, hash=head.hash, balance=before.balance + p.amount
        )
    cutover = len(out)
    for p in new:
        key = (p.org_id, p.account_id)
        per_org[key] = add(p, per_org.get(key) or Head(p.account_id, org_id=p.org_id))
    return out, cutover


def run_export(
    entries: list[dict[str, Any]],
    cutover: int | None,
    org: str | None = None,
    previous_cutover: int | None = None,
) -> Result:
    """Verify as a union of ``org`` would (others' entries as leaf hashes), or in full."""
    cp = checkpoint(entries)
    v = Verifier(KEYS, [], b"", previous_cutover)
    header: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "start": 0,
        "end": len(entries),
        "checkpoint": cp.to_json(),
    }
    if cutover is not None:
        header["legacy_cutover"] = cutover
    v.feed_header(header)
    for i, e in enumerate(entries):
        leaf = leaf_hash(leaf_bytes(e)).hex()
        if org is not None and e["org_id"] != org:
            v.feed({"position": i, "leaf_hash": leaf, "redacted": True})
        else:
            v.feed({"position": i, "leaf_hash": leaf, "entry": e})
    return v.finish()


def mixed_ledger() -> tuple[list[dict[str, Any]], int]:
    """vol-x earned 50 in A; B's reward spent 30 of it (the old cross-organisation spend);
    vol-y is of A only. Then new entries in A, in B, and a first one in C."""
    return build_across_cutover(
        [
            in_org(posting("vol-x", Kind.CREDIT, 50, "c1"), "org-a"),
            in_org(posting("vol-y", Kind.CREDIT, 7, "c2"), "org-a"),
            in_org(posting("vol-x", Kind.DEBIT, -30, "r1"), "org-b"),
            in_org(posting("vol-x", Kind.CREDIT, 4, "c3"), "org-a"),
        ],
        [
            in_org(posting("vol-x", Kind.CREDIT, 10, "c4"), "org-a"),
            in_org(posting("vol-x", Kind.CREDIT, 30, "c5"), "org-b"),
            in_org(posting("vol-y", Kind.CREDIT, 1, "c6"), "org-a"),
            in_org(posting("vol-x", Kind.CREDIT, 2, "c7"), "org-c"),
            in_org(posting("vol-x", Kind.DEBIT, -5, "r2"), "org-a"),
        ],
    )


def test_both_rules_verify_in_full_and_balances_are_per_organisation() -> None:
    entries, cutover = mixed_ledger()
    r = run_export(entries, cutover)
    assert r.ok, found(r)
    assert r.legacy_cutover == 4 and r.gaps_redacted == 0
    assert r.account("vol-x", "org-a").balance == 50 + 4 + 10 - 5
    assert r.account("vol-x", "org-b").balance == -30 + 30
    assert r.account("vol-x", "org-b").min_balance == -30  # the legacy cross-org spend, shown
    assert r.account("vol-x", "org-c").balance == 2
    assert r.account("vol-y").balance == 8
    # A's first new entry continues A's last legacy entry; C's chain starts at the genesis
    a_first, c_first = entries[4], entries[7]
    assert (a_first["account_seq"], a_first["prev_hash"]) == (4, entries[3]["entry_hash"])
    assert (a_first["balance_after"], c_first["account_seq"]) == (64, 1)


def test_a_union_sees_its_own_chains_and_the_redacted_legacy_gaps_are_explained() -> None:
    entries, cutover = mixed_ledger()
    for org in ("org-a", "org-b", "org-c"):
        r = run_export(entries, cutover, org)
        assert r.ok, (org, found(r))
        assert {o for o, _ in r.accounts} == {org}
    assert run_export(entries, cutover, "org-a").gaps_redacted == 1  # B's legacy debit
    # without the cutover every entry is judged by the legacy rule: the new chains break
    assert not run_export(entries, None).ok


def test_tampering_on_either_side_of_the_cutover_is_caught() -> None:
    entries, cutover = mixed_ledger()
    for i, field, value in [
        (1, "amount", 70),
        (4, "balance_after", 99),
        (5, "prev_hash", "1" * 64),
    ]:
        bad = [dict(e) for e in entries]
        bad[i][field] = value
        for org in (None, bad[i]["org_id"]):
            r = run_export(bad, cutover, org)
            assert not r.ok and bad[i]["entry_id"] in {f.entry_id for f in r.findings}, (i, org)
    # a gap with no redacted entry to explain it (a full export) is a finding
    full = run_export(entries[:2] + entries[3:], cutover)
    assert "chain_gap" in {f.code for f in full.findings}
    # moving the cutover after a union has seen it is a finding
    moved = run_export(entries, cutover + 1, previous_cutover=cutover)
    assert "cutover_changed" in {f.code for f in moved.findings}


# --- tampered exports: one finding per fault, the entry it is about named first


def export_lines(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"position": i, "leaf_hash": leaf_hash(leaf_bytes(e)).hex(), "entry": e}
        for i, e in enumerate(entries)
    ]


def verify_lines(
    lines: list[dict[str, Any]], cp: Checkpoint, end: int, previous: bytes = b""
) -> Result:
    v = Verifier(KEYS, [], previous)
    header = {"format": EXPORT_FORMAT, "start": 0, "end": end, "checkpoint": cp.to_json()}
    v.feed_header({**header, "legacy_cutover": 0})
    v.feed_many(lines)
    return v.finish()


def faults(r: Result) -> list[tuple[str, int | None, int | None]]:
    return [(f.code, f.position, f.entry_id) for f in r.faults]


def long_ledger(n: int = 600) -> list[dict[str, Any]]:
    return build([posting("abc"[i % 3], Kind.CREDIT, 1 + i % 7) for i in range(n)])


def test_one_deleted_export_line_is_one_finding_and_the_rest_is_verified() -> None:
    entries = long_ledger()
    cp = checkpoint(entries)
    lines = export_lines(entries)
    del lines[40]  # account b's 14th entry (entry 41)
    r = verify_lines(lines, cp, len(entries))
    assert faults(r) == [("position_gap", 40, 41)], [str(f) for f in r.faults]
    assert [f.code for f in r.findings] == ["position_gap"]
    gap = r.faults[0]
    assert gap.account_id == "b" and "seq 14" in gap.message and "by 6" in gap.message
    assert "cannot be checked past position 40" in gap.message
    assert r.entries_checked == len(entries) - 1 and r.tree_size == len(entries)
    # the rest really is verified: a change after the gap is still its own finding
    lines[500]["entry"] = {**lines[500]["entry"], "amount": 99}
    r = verify_lines(lines, cp, len(entries))
    assert [(c, p) for c, p, _ in faults(r)] == [("position_gap", 40), ("entry_hash_mismatch", 501)]
    assert set(r.faults[1].also) == {"leaf_mismatch", "balance_mismatch"}


def test_a_deleted_line_is_checked_against_the_leaves_verified_before() -> None:
    """A union that verified the export before knows the missing leaf: the tree still checks."""
    entries = long_ledger(50)
    cp = checkpoint(entries)
    lines = export_lines(entries)
    previous = b"".join(bytes.fromhex(x["leaf_hash"]) for x in lines)
    del lines[10:12]
    r = verify_lines(lines, cp, len(entries), previous)
    assert faults(r) == [("position_gap", 10, None)], [str(f) for f in r.faults]
    assert "positions 10..11" in r.faults[0].message and "entries 11..12" in r.faults[0].message
    assert "cannot be checked" not in r.faults[0].message  # the signed root did check


def test_an_inserted_validly_hashed_line_is_named_as_inserted_first() -> None:
    """A forged credit for account a, chained to a's entry before it, its hashes valid, slipped
    into the export with the later positions renumbered: one finding, the forged entry."""
    entries = long_ledger(60)
    cp = checkpoint(entries)
    lines = export_lines(entries)
    before = entries[30]  # a's 11th entry; a's next is entries[33]
    forged_posting = posting("a", Kind.CREDIT, 500)
    head = Head("a", seq=before["account_seq"], hash=before["entry_hash"])
    head = replace(head, balance=before["balance_after"])
    _, e = append(head, forged_posting)
    forged = e.content()
    forged.update(
        entry_id=9999,
        cause_type=forged_posting.event_type,
        recorded_at=before["recorded_at"],
        entry_hash=e.entry_hash,
    )
    lines.insert(
        31, {"position": 31, "leaf_hash": leaf_hash(leaf_bytes(forged)).hex(), "entry": forged}
    )
    for i, line in enumerate(lines):
        line["position"] = i
    r = verify_lines(lines, cp, len(entries))
    assert faults(r) == [("entry_inserted", 31, 9999)], [str(f) for f in r.faults]
    assert "matches the export without it" in r.faults[0].message
    assert r.account("a").balance == sum(x["amount"] for x in entries if x["account_id"] == "a")
    # not renumbered (two lines say position 31): still the one finding, the forged entry
    lines = export_lines(entries)
    lines.insert(
        31, {"position": 31, "leaf_hash": leaf_hash(leaf_bytes(forged)).hex(), "entry": forged}
    )
    r = verify_lines(lines, cp, len(entries))
    assert faults(r) == [("entry_inserted", 31, 9999)], [str(f) for f in r.faults]
    assert r.faults[0].also == ("position_out_of_order at entry 32",)


def test_an_inserted_entry_at_the_end_of_the_tree_is_named_first() -> None:
    """As a database owner would: the forged entry takes a's 3rd place in the chain (the later
    ones renumbered) but, being new, the last position of the tree."""
    entries = long_ledger(30)
    a = [i for i, x in enumerate(entries) if x["account_id"] == "a"]
    second = entries[a[1]]
    for i in a[2:]:
        entries[i] = {**entries[i], "account_seq": entries[i]["account_seq"] + 1}
    p = posting("a", Kind.CREDIT, 500)
    head = replace(Head("a", seq=2, hash=second["entry_hash"]), balance=second["balance_after"])
    _, e = append(head, p)
    forged = {**e.content(), "entry_id": 31, "cause_type": p.event_type}
    forged.update(recorded_at=second["recorded_at"], entry_hash=e.entry_hash)
    tampered = [*entries, forged]
    r = verify_lines(export_lines(tampered), checkpoint(tampered), len(tampered))
    assert faults(r)[0] == ("entry_inserted", 30, 31), [str(f) for f in r.faults]
    # then each renumbered entry, once
    assert [(c, eid) for c, _, eid in faults(r)[1:]] == [
        ("entry_hash_mismatch", entries[i]["entry_id"]) for i in a[2:]
    ]


def test_two_swapped_lines_are_one_finding() -> None:
    entries = long_ledger(40)
    cp = checkpoint(entries)
    lines = export_lines(entries)
    lines[12], lines[15] = lines[15], lines[12]  # a's 5th and 6th entries
    for i, line in enumerate(lines):
        line["position"] = i
    r = verify_lines(lines, cp, len(entries))
    assert faults(r)[0] == ("entry_moved", 15, 13), [str(f) for f in r.faults]
    assert {"chain_gap at entry 16"} <= set(r.faults[0].also)
    assert [f.code for f in r.faults] == ["entry_moved", "root_mismatch"]


def test_an_inserted_sibling_of_an_accounts_last_entry_is_told_by_the_signed_tree() -> None:
    """Nothing follows either of the two entries that claim account a's last place: the
    signed checkpoint says which one the tree had, before or after the forged line."""
    entries = long_ledger(30)
    cp = checkpoint(entries)
    last = max(i for i, x in enumerate(entries) if x["account_id"] == "a")
    before = next(x for x in entries if x["account_id"] == "a" and x["account_seq"] == 9)
    assert entries[last]["account_seq"] == 10
    p = posting("a", Kind.CREDIT, 500)
    head = replace(Head("a", seq=9, hash=before["entry_hash"]), balance=before["balance_after"])
    _, e = append(head, p)
    forged = {**e.content(), "entry_id": 777, "cause_type": p.event_type}
    forged.update(recorded_at=before["recorded_at"], entry_hash=e.entry_hash)
    genuine_balance = sum(x["amount"] for x in entries if x["account_id"] == "a")
    for at in (last, last + 1):  # the forged line before, then after, the genuine one
        lines = export_lines(entries)
        lines.insert(
            at, {"position": at, "leaf_hash": leaf_hash(leaf_bytes(forged)).hex(), "entry": forged}
        )
        for i, line in enumerate(lines):
            line["position"] = i
        r = verify_lines(lines, cp, len(entries))
        assert faults(r) == [("entry_inserted", at, 777)], (at, [str(f) for f in r.faults])
        assert "matches the signed checkpoint" in r.faults[0].message
        a = r.account("a")
        assert (a.balance, a.earned, a.seq) == (genuine_balance, genuine_balance, 10), at


def test_a_line_claiming_a_position_far_past_the_export_is_an_edit_not_a_gap() -> None:
    """A line edited to say position 2^63 - 1 (or just past the export's end) is named as
    out of place and read where it belongs; the verifier used to fill the "gap" up to it,
    for ever. The lines after it still verify."""
    entries = long_ledger(50)
    cp = checkpoint(entries)
    for claimed in (2**63 - 1, len(entries), len(entries) + 1):
        lines = export_lines(entries)
        lines[20] = {**lines[20], "position": claimed}
        r = verify_lines(lines, cp, len(entries))
        assert [(f.code, f.position) for f in r.findings] == [("position_out_of_order", 20)]
        assert "past the end of the export (50)" in r.findings[0].message
        assert r.entries_checked == len(entries) and r.tree_size == len(entries)
    # with no end and no checkpoint in the header, a jump past any possible gap is one too
    v = Verifier(KEYS, [])
    v.feed_header({"format": EXPORT_FORMAT, "start": 0, "legacy_cutover": 0})
    lines = export_lines(entries)
    lines[3] = {**lines[3], "position": 2**62}
    v.feed_many(lines)
    assert ("position_out_of_order", 3) in [(f.code, f.position) for f in v.finish().findings]


def test_an_occurred_at_that_is_not_text_is_a_finding_not_a_crash() -> None:
    entries = good_ledger()
    for bad in (20261001, None, ["2026-10"], {"m": 1}):
        lines = export_lines(entries)
        lines[2] = {**lines[2], "entry": {**lines[2]["entry"], "occurred_at": bad}}
        r = verify_lines(lines, checkpoint(entries), len(entries))
        codes = [(f.code, f.position) for f in r.findings]
        assert ("malformed_entry", 2) in codes, codes
        assert "occurred_at" in next(f.message for f in r.findings if f.code == "malformed_entry")
