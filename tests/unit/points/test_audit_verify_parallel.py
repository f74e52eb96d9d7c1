"""`jifen audit verify` split over processes (offline.verify_files with jobs > 1, the runs
scanned by domain/chunks.py and joined in order): on a clean export the same result as one
process, from runs really verified apart; any tamper — in the first, middle or last run, or one
that every run alone finds clean (a link broken across a boundary, a line deleted at one, a
cause repeated in another run, a reversal before its credit) — and the export is verified
again in one process, so the findings are exactly the sequential ones."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson
import pytest

from jifen.points.audit.domain.canonical import leaf_bytes
from jifen.points.audit.domain.chunks import join_chunks, scan_chunk
from jifen.points.audit.domain.merkle import leaf_hash
from jifen.points.audit.domain.verify import EXPORT_FORMAT, Result, Verifier
from jifen.points.audit.offline import verify_files
from jifen.points.domain.chain import CANONICAL_FIELDS, entry_hash
from jifen.points.domain.ledger import Kind, Posting
from tests.unit.points.test_audit_verify import (
    KEYS,
    build,
    build_across_cutover,
    checkpoint,
    in_org,
    posting,
)

JOBS = 3
Entries = list[dict[str, Any]]


def varied_postings(n: int, seed: int, orgs: tuple[str, ...] = ("org-1",)) -> list[Posting]:
    """Credits, debits, refunds and reversals over a few accounts, never below zero; the
    reversals and refunds often far from their credit or debit (in another run)."""
    rng = random.Random(seed)
    out: list[Posting] = []
    credits: list[tuple[str, str, int, str]] = []
    debits: list[tuple[str, str, int, str]] = []
    balance: dict[tuple[str, str], int] = {}
    for _ in range(n):
        org, acct = rng.choice(orgs), rng.choice("abcdefg")
        r = rng.random()
        if r < 0.08 and credits:
            o, a, amount, ref = credits.pop(rng.randrange(len(credits)))
            if balance[(o, a)] >= amount:
                out.append(in_org(posting(a, Kind.REVERSAL, -amount, ref), o))
                balance[(o, a)] -= amount
                continue
        elif r < 0.2 and balance.get((org, acct), 0) > 10:
            amount, ref = rng.randint(1, 10), str(uuid.uuid4())
            out.append(in_org(posting(acct, Kind.DEBIT, -amount, ref), org))
            balance[(org, acct)] -= amount
            debits.append((org, acct, amount, ref))
            continue
        elif r < 0.25 and debits:
            o, a, amount, ref = debits.pop(rng.randrange(len(debits)))
            out.append(in_org(posting(a, Kind.REFUND, amount, ref), o))
            balance[(o, a)] += amount
            continue
        amount, ref = rng.randint(1, 40), str(uuid.uuid4())
        out.append(in_org(posting(acct, Kind.CREDIT, amount, ref), org))
        balance[(org, acct)] = balance.get((org, acct), 0) + amount
        credits.append((org, acct, amount, ref))
    return out


def export_bytes(entries: Entries, cutover: int | None, cp_entries: Entries | None = None) -> bytes:
    """The NDJSON the audit API streams (orjson, the entry's keys in the export's order)."""
    cp = checkpoint(cp_entries if cp_entries is not None else entries)
    header: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "org_id": "org-1",
        "start": 0,
        "end": len(cp_entries if cp_entries is not None else entries),
        "checkpoint": cp.to_json(),
    }
    if cutover is not None:
        header["legacy_cutover"] = cutover
    lines = [orjson.dumps(header)]
    for i, e in enumerate(entries):
        lines.append(
            orjson.dumps({"position": i, "leaf_hash": leaf_hash(leaf_bytes(e)).hex(), "entry": e})
        )
    return b"\n".join(lines) + b"\n"


def first_lines(data: bytes, jobs: int = JOBS) -> list[int]:
    """The index (position in the file, 0 = the first entry line) of each run's first line."""
    head = data.index(b"\n") + 1
    body = len(data) - head
    starts, offset = [], head
    for line in data[head:].splitlines(keepends=True):
        starts.append(offset)
        offset += len(line)
    out = []
    for k in range(jobs):
        cut = head + body * k // jobs
        out.append(next(i for i, s in enumerate(starts) if s >= cut))
    return out


def both(tmp_path: Path, data: bytes) -> tuple[Result, Result]:
    path = tmp_path / "export.ndjson"
    path.write_bytes(data)
    one = verify_files([path], KEYS, jobs=1)
    many = verify_files([path], KEYS, jobs=JOBS, min_chunk_bytes=1)
    return one, many


def same(one: Result, many: Result) -> None:
    """Everything a result says, the same: findings, faults, tree, leaves, balances (every
    field of every account, in the same order), the monthly totals."""
    assert [str(f) for f in many.findings] == [str(f) for f in one.findings]
    assert many.faults == one.faults
    for name in (
        "tree_size",
        "entries_checked",
        "redacted",
        "root",
        "leaves",
        "checkpoint",
        "legacy_cutover",
        "gaps_redacted",
    ):
        assert getattr(many, name) == getattr(one, name), name
    assert list(many.monthly.items()) == list(one.monthly.items())
    assert list(many.accounts) == list(one.accounts)
    state = [f.name for f in fields(next(iter(one.accounts.values()))) if f.name != "hist"]
    for key, st in one.accounts.items():
        for name in state:
            assert getattr(many.accounts[key], name) == getattr(st, name), (key, name)


def ledger(n: int = 900, seed: int = 1) -> Entries:
    return build(varied_postings(n, seed))


def across_cutover(seed: int = 2) -> tuple[Entries, int]:
    orgs = ("org-1", "org-2")
    return build_across_cutover(
        varied_postings(450, seed, orgs), varied_postings(450, seed + 1, orgs)
    )


@pytest.mark.parametrize("cutover", ["none", "mid", "zero"])
def test_a_clean_export_gives_the_same_result_from_runs_verified_apart(
    tmp_path: Path, cutover: str
) -> None:
    if cutover == "mid":
        entries, cut = across_cutover()
        value: int | None = cut
    else:
        entries, value = ledger(), (None if cutover == "none" else 0)
    one, many = both(tmp_path, export_bytes(entries, value))
    assert one.ok, [str(f) for f in one.faults]
    assert many.processes == JOBS and one.processes == 1
    same(one, many)
    kinds = {k for _, k in one.monthly}
    assert kinds == {"credit", "debit", "refund", "reversal"}


def test_below_zero_legacy_sums_join_to_the_same_lowest_balance(tmp_path: Path) -> None:
    """A legacy cross-organisation spend leaves an organisation's sum below zero (not a
    finding): the lowest balance is the same when the spend and the credit are in other runs."""
    legacy = [in_org(posting("x", Kind.CREDIT, 50, str(uuid.uuid4())), "org-a") for _ in range(300)]
    legacy.insert(150, in_org(posting("x", Kind.DEBIT, -30, str(uuid.uuid4())), "org-b"))
    legacy += [in_org(posting("x", Kind.DEBIT, -5, str(uuid.uuid4())), "org-b") for _ in range(300)]
    entries, cut = build_across_cutover(legacy, [])
    one, many = both(tmp_path, export_bytes(entries, cut))
    assert one.ok and many.processes == JOBS
    assert one.account("x", "org-b").min_balance == -30 - 5 * 300
    same(one, many)


def rewrite(entry: dict[str, Any], **changes: Any) -> None:
    """Change an entry and recompute its own hash (a forger with the database)."""
    entry.update(changes)
    entry["entry_hash"] = entry_hash({f: entry[f] for f in CANONICAL_FIELDS})


def relink_rest(entries: Entries, i: int) -> None:
    """After entry i was rewritten, rechain its account's later entries onto it, so every
    run alone finds its chain intact."""
    acct, last = entries[i]["account_id"], entries[i]["entry_hash"]
    for e in entries[i + 1 :]:
        if e["account_id"] == acct:
            rewrite(e, prev_hash=last)
            last = e["entry_hash"]


Tamper = Callable[[Entries, int], None]


def changed_amount(entries: Entries, i: int) -> None:
    entries[i]["amount"] += 1


def deleted(entries: Entries, i: int) -> None:
    del entries[i]


def swapped(entries: Entries, i: int) -> None:
    """Two neighbouring entries of one account, from i on, swapped (entry_moved)."""
    while entries[i]["account_id"] != entries[i + 1]["account_id"]:
        i += 1
    entries[i], entries[i + 1] = entries[i + 1], entries[i]


def rehashed(entries: Entries, i: int) -> None:
    e = entries[i]
    rewrite(e, amount=e["amount"] + 1, balance_after=e["balance_after"] + 1)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9], ids=["first run", "middle run", "last run"])
@pytest.mark.parametrize("tamper", [changed_amount, deleted, swapped, rehashed])
def test_a_tamper_in_any_run_is_reported_exactly_as_by_one_process(
    tmp_path: Path, tamper: Tamper, where: float
) -> None:
    entries = ledger()
    original = [dict(e) for e in entries]
    i = int(len(entries) * where)
    tamper(entries, i)
    one, many = both(tmp_path, export_bytes(entries, None, original))
    assert not one.ok
    assert many.processes == 1  # verified again in one process
    same(one, many)


def boundary(entries: Entries, cutover: int | None, k: int = 1) -> int:
    return first_lines(export_bytes(entries, cutover))[k]


def test_a_link_broken_across_a_run_boundary_is_found_by_the_join(tmp_path: Path) -> None:
    """The first entry of the second run points at another predecessor, its own hash and the
    rest of its chain recomputed: each run alone is clean; the join is not."""
    entries = ledger()
    original = [dict(e) for e in entries]
    i = boundary(entries, None)
    rewrite(entries[i], prev_hash="ab" * 32)
    relink_rest(entries, i)
    data = export_bytes(entries, None, original)
    assert boundary(entries, None) == i  # the same lengths: still the run's first line
    runs = runs_of(data)
    assert all(r is not None for r in runs)  # every run alone passes
    assert not join(data, runs)
    one, many = both(tmp_path, data)
    assert ("chain_broken", i) in [(f.code, f.position) for f in one.findings]
    assert many.processes == 1
    same(one, many)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_line_deleted_at_a_run_boundary_is_found(tmp_path: Path, offset: int) -> None:
    entries = ledger()
    original = [dict(e) for e in entries]
    i = boundary(entries, None, k=2) + offset
    lines = export_bytes(entries, None, original).split(b"\n")
    del lines[1 + i]
    one, many = both(tmp_path, b"\n".join(lines))
    assert (one.faults[0].code, one.faults[0].position) == ("position_gap", i)
    assert many.processes == 1
    same(one, many)


def test_a_cause_repeated_in_another_run_is_found(tmp_path: Path) -> None:
    entries = ledger()
    original = [dict(e) for e in entries]
    i = boundary(entries, None, k=2) + 5
    rewrite(entries[i], cause_event_id=entries[3]["cause_event_id"])
    relink_rest(entries, i)
    data = export_bytes(entries, None, original)
    assert all(r is not None for r in runs_of(data))
    one, many = both(tmp_path, data)
    assert ("duplicate_cause", i) in [(f.code, f.position) for f in one.findings]
    assert many.processes == 1
    same(one, many)


def test_a_reversal_before_its_credit_is_an_orphan_whichever_run_has_the_credit(
    tmp_path: Path,
) -> None:
    """A reversal whose credit comes later (another run) is an orphan; the same reversal
    after its credit, in a later run than the credit, is joined clean."""
    credit = posting("a", Kind.CREDIT, 30, "late")
    filler = [posting("abc"[n % 3], Kind.CREDIT, 5, str(uuid.uuid4())) for n in range(600)]
    clean = build([credit, *filler[:300], posting("a", Kind.REVERSAL, -30, "late"), *filler[300:]])
    one, many = both(tmp_path, export_bytes(clean, None))
    assert one.ok and many.processes == JOBS
    same(one, many)
    early = build([posting("a", Kind.REVERSAL, -30, "late"), *filler[:300], credit, *filler[300:]])
    # credits first in a's chain, so nothing goes below zero but the rule
    one, many = both(tmp_path, export_bytes(early, None))
    assert "orphan_reversal" in [f.code for f in one.findings]
    assert many.processes == 1
    same(one, many)


def runs_of(data: bytes) -> list[Any]:
    """Each run's lines scanned alone, cut where offline.verify_files cuts them."""
    head = data.index(b"\n") + 1
    starts = first_lines(data)
    lines = data[head:].splitlines(keepends=True)
    ends = [*starts[1:], len(lines)]
    return [scan_chunk(lines[s:e], float("inf")) for s, e in zip(starts, ends, strict=True)]


def join(data: bytes, runs: list[Any]) -> bool:
    v = Verifier(KEYS)
    v.feed_header(orjson.loads(data[: data.index(b"\n")]))
    return join_chunks(v, runs)


def test_no_line_can_be_fed_after_a_join() -> None:
    data = export_bytes(ledger(90), None)
    v = Verifier(KEYS)
    v.feed_header(orjson.loads(data[: data.index(b"\n")]))
    assert join_chunks(v, runs_of(data))
    with pytest.raises(RuntimeError):
        v.feed_lines([b"{}"])


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 64, 100, 257])
def test_the_runs_subtrees_make_the_same_tree_at_every_size(size: int) -> None:
    """Wherever the runs are cut, the nodes they hashed are the nodes of the whole tree, and
    the root at every size (the signed checkpoints') is the same."""
    import hashlib
    import itertools

    from jifen.points.audit.domain.chunks import _subtrees

    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    whole = Verifier(KEYS)
    whole.leaves = list(leaves)
    want = whole._levels()
    rng = random.Random(size)
    for _ in range(5):
        cuts = sorted({0, size, *(rng.randrange(size + 1) for _ in range(rng.randrange(4)))})
        split = Verifier(KEYS)
        split.leaves = list(leaves)
        for a, b in itertools.pairwise(cuts):
            for level, piece in enumerate(_subtrees(a, leaves[a:b]), start=1):
                split.subtrees.setdefault(level, []).append(piece)
        assert split._levels() == want, cuts
        assert all(split._root_at(want, n) == whole._root_at(want, n) for n in range(size + 1))


def _dies_after_the_first_range(task: tuple[str, int, int, float]) -> Any:
    """A worker's scan that dies on every range but the first (as when killed)."""
    import os

    from jifen.points.audit import offline

    with open(task[0], "rb") as f:
        first = task[1] == len(f.readline())
    if not first:
        os._exit(9)
    return offline._scan_range(task)


def test_a_worker_that_dies_leaves_the_verification_to_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-run (out of memory, say) is never waited for forever: the export
    is verified in one process and the result is the sequential one."""
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "export.ndjson"
    path.write_bytes(export_bytes(ledger(), None))
    one = verify_files([path], KEYS, jobs=1)
    real_map = ProcessPoolExecutor.map

    def map_dying(self: ProcessPoolExecutor, fn: Any, *its: Any, **kw: Any) -> Any:
        return real_map(self, _dies_after_the_first_range, *its, **kw)

    monkeypatch.setattr(ProcessPoolExecutor, "map", map_dying)
    many = verify_files([path], KEYS, jobs=JOBS, min_chunk_bytes=1)
    assert one.ok and many.processes == 1
    same(one, many)
