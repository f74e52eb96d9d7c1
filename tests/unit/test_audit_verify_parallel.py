"""The verifier's parallel path (workers verify chunks on their own, ``Verifier.merge`` joins
them, anything unusual is replayed record by record) gives exactly what the one-process path
gives, and a tampering its shortcut could skip is still caught: an entry rewritten with its
own hash recomputed, at a chunk's edge, across chunks, or in a redacted line."""

from __future__ import annotations

import copy
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from jifen.points.audit import offline
from jifen.points.audit.domain.canonical import leaf_bytes, recompute_entry_hash
from jifen.points.audit.domain.merkle import leaf_hash
from jifen.points.audit.domain.verify import (
    EXPORT_FORMAT,
    ChunkSummary,
    Result,
    Verifier,
    summarize_records,
)
from jifen.points.domain.ledger import Kind
from tests.unit.test_audit_verify import KEYS, build, checkpoint, posting


def ledger(seed: int, n: int = 80) -> list[dict[str, Any]]:
    """A valid ledger: credits, reversals of earlier credits, debits, refunds of earlier
    debits, over six accounts."""
    rng = random.Random(seed)
    postings = []
    credits: list[tuple[str, int]] = []
    debits: list[tuple[str, int]] = []
    balance = dict.fromkeys("abcdef", 0)
    for i in range(n):
        a = rng.choice("abcdef")
        r = rng.random()
        if r < 0.55 or not (credits or debits):
            p = posting(a, Kind.CREDIT, rng.randint(1, 50), f"c{i}")
            credits.append((a, i))
        elif r < 0.7 and credits:
            a, j = credits.pop(rng.randrange(len(credits)))
            # may go below zero: a recorded freeze, not a finding
            p = posting(a, Kind.REVERSAL, -rng.randint(1, 50), f"c{j}")
        elif r < 0.85 and balance[a] > 1:
            p = posting(a, Kind.DEBIT, -1, f"r{i}")
            debits.append((a, i))
        elif debits:
            a, j = debits.pop(rng.randrange(len(debits)))
            p = posting(a, Kind.REFUND, 1, f"r{j}")
        else:
            continue
        balance[a] += p.amount
        postings.append(p)
    return build(postings)


def records(entries: list[dict[str, Any]], redact: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        rec: dict[str, Any] = {"position": i, "leaf_hash": leaf_hash(leaf_bytes(e)).hex()}
        if e["account_id"] == redact:
            rec["redacted"] = True
        else:
            rec["entry"] = copy.deepcopy(e)
        out.append(rec)
    return out


def write(tmp: Path, entries: list[dict[str, Any]], recs: list[dict[str, Any]]) -> Path:
    header = {
        "format": EXPORT_FORMAT,
        "start": 0,
        "end": len(recs),
        "checkpoint": checkpoint(entries).to_json(),
    }
    path = tmp / "export.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [header, *recs]) + b"\n")
    return path


def same(a: Result, b: Result) -> None:
    assert [f.to_json() for f in a.findings] == [f.to_json() for f in b.findings]
    assert (a.tree_size, a.entries_checked, a.redacted, a.root, a.leaves) == (
        b.tree_size,
        b.entries_checked,
        b.redacted,
        b.root,
        b.leaves,
    )
    assert list(a.accounts.items()) == list(b.accounts.items())
    assert list(a.monthly.items()) == list(b.monthly.items())


def both(path: Path) -> Result:
    """Verify record by record (``feed_many`` alone), then in chunks of a few lines in this
    process and with a worker: the same result."""
    lines = path.read_bytes().splitlines()
    v = Verifier(KEYS)
    v.feed_header(orjson.loads(lines[0]))
    v.feed_many([orjson.loads(line) for line in lines[1:]])
    exact = v.finish()
    alone = offline.verify_files([path], KEYS, jobs=0)
    same(exact, alone)
    pooled = offline.verify_files([path], KEYS, jobs=1)
    same(exact, pooled)
    return pooled


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "CHUNK_BYTES", 3_000)  # ~4 lines a chunk: many edges


def rewrite(e: dict[str, Any], **changes: Any) -> None:
    """Tamper as the database owner would: change fields and recompute the entry's own hash."""
    e.update(changes)
    e["entry_hash"] = recompute_entry_hash(e)


def test_a_clean_export_verifies_the_same_with_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged: list[bool] = []
    merge = Verifier.merge

    def spy(self: Verifier, s: ChunkSummary) -> bool:
        merged.append(merge(self, s))
        return merged[-1]

    monkeypatch.setattr(Verifier, "merge", spy)
    for seed in range(4):
        entries = ledger(seed)
        r = both(write(tmp_path, entries, records(entries, redact="f" if seed % 2 else "")))
        assert r.ok, [str(f) for f in r.findings]
    assert len(merged) > 40 and all(merged)  # the shortcut was taken, chunk after chunk


def test_random_tampering_gives_the_same_findings_with_workers(tmp_path: Path) -> None:
    rng = random.Random(7)
    fields = ["amount", "balance_after", "account_seq", "prev_hash", "entry_hash", "kind"]
    fields += ["cause_event_id", "occurred_at", "completion_id", "redemption_id", "entry_id"]
    for _ in range(25):
        entries = ledger(rng.randrange(1000))
        recs = records(entries)
        victim = rng.randrange(len(recs))
        e = recs[victim]["entry"]
        field = rng.choice(fields)
        value = e[field]
        if isinstance(value, int):
            e[field] = value + rng.choice([1, -1])
        elif field == "kind":
            e[field] = rng.choice(["credit", "debit", "refund", "reversal", "adjustment"])
        elif isinstance(value, str):
            e[field] = recs[rng.randrange(len(recs))]["entry"][field]
        else:
            e[field] = "x"
        if rng.random() < 0.5:  # the operator recomputed the entry hash, even the leaf
            e["entry_hash"] = recompute_entry_hash(e)
            if rng.random() < 0.5:
                recs[victim]["leaf_hash"] = leaf_hash(leaf_bytes(e)).hex()
        both(write(tmp_path, entries, recs))


def test_an_entry_rewritten_with_its_hash_recomputed_at_a_chunk_edge_is_caught(
    tmp_path: Path,
) -> None:
    """A balance changed and the entry's hash and leaf recomputed: within its chunk it chains
    (the next entry of the account is in a later chunk), so only joining the chunks, or the
    next entry's prev_hash, or the tree shows it."""
    entries = ledger(3, 40)
    for victim in range(len(entries) - 8, len(entries)):
        recs = records(entries)
        e = recs[victim]["entry"]
        rewrite(e, balance_after=e["balance_after"] + 5)
        recs[victim]["leaf_hash"] = leaf_hash(leaf_bytes(e)).hex()
        r = both(write(tmp_path, entries, recs))
        assert {"balance_mismatch", "root_mismatch"} <= {f.code for f in r.findings}
        assert ("balance_mismatch", victim) in {(f.code, f.position) for f in r.findings}


def test_the_first_entry_of_an_account_in_a_chunk_must_continue_its_chain(
    tmp_path: Path,
) -> None:
    """Each chunk is checked on its own from the account's first entry in it: a consistent
    rewrite of an account from some entry on (every later hash recomputed) chains inside the
    chunks but not onto what came before."""
    entries = ledger(5, 60)
    recs = records(entries)
    victim = 30
    acct = recs[victim]["entry"]["account_id"]
    prev = None
    for rec in recs[victim:]:
        e = rec["entry"]
        if e["account_id"] != acct:
            continue
        changes: dict[str, Any] = {"balance_after": e["balance_after"] + 1}
        if prev is not None:
            changes["prev_hash"] = prev
        rewrite(e, **changes)
        rec["leaf_hash"] = leaf_hash(leaf_bytes(e)).hex()
        prev = e["entry_hash"]
    r = both(write(tmp_path, entries, recs))
    assert not r.ok
    assert ("balance_mismatch", victim) in {(f.code, f.position) for f in r.findings}


def test_rules_across_chunks_are_still_checked(tmp_path: Path) -> None:
    """A cause event or a reference repeated far apart, and a reversal whose credit comes only
    after it, each in chunks that are clean on their own."""
    entries = ledger(11, 60)
    credits = [i for i, e in enumerate(entries) if e["kind"] == "credit"]
    first, last = credits[0], credits[-1]
    for change, code in [
        ({"cause_event_id": entries[first]["cause_event_id"]}, "duplicate_cause"),
        ({"completion_id": entries[first]["completion_id"]}, "duplicate_reference"),
    ]:
        recs = records(entries)
        rewrite(recs[last]["entry"], **change)
        r = both(write(tmp_path, entries, recs))
        assert (code, last) in {(f.code, f.position) for f in r.findings}
    # a reversal of a credit that only comes later
    entries = build(
        [posting("a", Kind.CREDIT, 5)] * 1
        + [posting(f"x{i}", Kind.CREDIT, 1) for i in range(12)]
        + [posting("a", Kind.REVERSAL, -1, "late")]
        + [posting(f"y{i}", Kind.CREDIT, 1) for i in range(12)]
        + [posting("b", Kind.CREDIT, 1, "late")]
    )
    r = both(write(tmp_path, entries, records(entries)))
    assert ("orphan_reversal", 13) in {(f.code, f.position) for f in r.findings}


def test_a_redacted_line_with_a_bad_leaf_is_replayed_not_trusted(tmp_path: Path) -> None:
    entries = ledger(2, 40)
    recs = records(entries, redact="f")
    redacted = [i for i, r in enumerate(recs) if r.get("redacted")]
    recs[redacted[0]]["leaf_hash"] = "00" * 32
    r = both(write(tmp_path, entries, recs))
    assert "root_mismatch" in {f.code for f in r.findings}


def test_merge_refuses_a_chunk_that_does_not_continue_and_changes_nothing() -> None:
    entries = ledger(1, 30)
    recs = records(entries)
    v = Verifier(KEYS)
    head, tail = recs[:20], recs[20:]
    s_tail = summarize_records(copy.deepcopy(tail))
    assert s_tail is not None
    assert not v.merge(s_tail)  # position 10 before 0..9
    assert (v.leaves, v.accounts, v.causes, v.refs, v.monthly) == ([], {}, set(), set(), {})
    s_head = summarize_records(copy.deepcopy(head))
    assert s_head is not None and v.merge(s_head)
    # an account's only entry in the chunk, balance changed, its hashes recomputed: the chunk
    # alone cannot know its predecessor, so it summarises; joining it is refused
    tampered = copy.deepcopy(tail)
    counts = Counter(r["entry"]["account_id"] for r in tampered)
    lone = next(r["entry"] for r in tampered if counts[r["entry"]["account_id"]] == 1)
    assert lone["account_seq"] > 1
    rewrite(lone, balance_after=lone["balance_after"] + 1)
    tampered[tampered.index(next(r for r in tampered if r["entry"] is lone))]["leaf_hash"] = (
        leaf_hash(leaf_bytes(lone)).hex()
    )
    s = summarize_records(tampered)
    assert s is not None
    before = (len(v.leaves), copy.deepcopy(v.accounts), set(v.causes), set(v.refs))
    assert not v.merge(s)
    assert (len(v.leaves), v.accounts, v.causes, v.refs) == before
    assert v.merge(s_tail)
    v.feed_header(
        {"format": EXPORT_FORMAT, "start": 0, "checkpoint": checkpoint(entries).to_json()}
    )
    assert v.finish().ok


def test_anything_unusual_in_a_chunk_is_left_to_the_replay() -> None:
    entries = ledger(4, 10)
    for change in [
        {"amount": "3"},
        {"account_seq": 1.0},
        {"occurred_at": 5},
        {"cause_event_id": ["x"]},
        {"kind": "debit", "balance_after": -1},
    ]:
        recs = records(entries)
        rewrite(recs[3]["entry"], **change)
        recs[3]["leaf_hash"] = leaf_hash(leaf_bytes(recs[3]["entry"])).hex()
        assert summarize_records(recs) is None, change
    recs = records(entries)
    recs[2]["leaf_hash"] = "ab" * 32  # the tree holds something else
    assert summarize_records(recs) is None
