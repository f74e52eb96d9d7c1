"""Tampering done directly in PostgreSQL as the database owner, bypassing the service (the
append-only triggers disabled in the test), each caught by the offline verifier with the
exact entry named.

Each test: a real ledger (LedgerWorker.append) in a fresh database; the union verifies an
export once (keeping the checkpoint and the leaf hashes); the ledger grows; someone tampers;
the union verifies the next export."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from jifen.kernel.contracts import isoformat as rfc3339
from jifen.points.audit import store
from jifen.points.audit.cli import app as audit_cli
from jifen.points.audit.domain.canonical import hash_bytes
from jifen.points.audit.domain.verify import Result
from jifen.points.audit.offline import load_keys, verify_files
from jifen.points.db import MIGRATIONS, queries
from tests.integration.points.test_audit_fixtures import Ledger, ledger_in, sample_batches

FreshDb = Callable[[Path], Awaitable[str]]
TABLES = ("ledger_entry", "merkle_leaf", "merkle_node", "audit_checkpoint")


@pytest.fixture
async def union(fresh_db: FreshDb, tmp_path: Path) -> AsyncIterator[tuple[Ledger, Path]]:
    """A ledger the union has verified once at 8 entries, then grown to 14 and checkpointed."""
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        batches = sample_batches(lg.book)
        for b in batches[:2]:
            await lg.append(b)
        await lg.checkpoint()
        first = await lg.export(tmp_path / "export-1.ndjson", tmp_path / "keys.json")
        clean = verify_files(
            [first], load_keys(tmp_path / "keys.json"), tmp_path / "saved", tmp_path / "state"
        )
        assert clean.ok, [str(f) for f in clean.findings]
        assert (tmp_path / "state" / "leaves.bin").stat().st_size == 8 * 32
        for b in batches[2:]:
            await lg.append(b)
        await lg.checkpoint()
        yield lg, tmp_path


async def owner(lg: Ledger) -> asyncpg.Connection:
    conn = await asyncpg.connect(lg.dsn)
    for t in TABLES:
        await conn.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
    return conn


async def verify_again(lg: Ledger, tmp: Path) -> Result:
    """What the union does next: (the service places new entries and signs) export, verify."""
    await lg.checkpoint()
    export = await lg.export(tmp / "export-2.ndjson")
    return verify_files([export], load_keys(tmp / "keys.json"), tmp / "saved", tmp / "state")


def named(result: Result, code: str) -> set[int | None]:
    return {f.entry_id for f in result.findings if f.code == code}


def entry_hash_of(row: asyncpg.Record, **changes: object) -> str:
    e = {
        "account_id": row["account_id"],
        "account_seq": row["account_seq"],
        "kind": row["kind"],
        "amount": row["amount"],
        "balance_after": row["balance_after"],
        "org_id": row["org_id"],
        "category": row["category"],
        "cause_event_id": str(row["cause_event_id"]),
        "job_id": str(row["job_id"]) if row["job_id"] else None,
        "completion_id": str(row["completion_id"]) if row["completion_id"] else None,
        "redemption_id": str(row["redemption_id"]) if row["redemption_id"] else None,
        "occurred_at": rfc3339(row["occurred_at"]),
        "prev_hash": row["prev_hash"],
    }
    e.update(changes)
    return hashlib.sha256(hash_bytes(e)).hexdigest()


async def test_an_untampered_ledger_verifies(union: tuple[Ledger, Path]) -> None:
    lg, tmp = union
    result = await verify_again(lg, tmp)
    assert result.ok, [str(f) for f in result.findings]
    assert result.tree_size == 14 and result.entries_checked == 12 and result.redacted == 2


async def test_changed_amount_is_named(union: tuple[Ledger, Path]) -> None:
    lg, tmp = union
    victim = (await lg.rows("vol-a"))[1]  # credit of 30, inside the checkpoint already verified
    conn = await owner(lg)
    await conn.execute("UPDATE ledger_entry SET amount = 300 WHERE id = $1", victim["id"])
    await conn.close()
    result = await verify_again(lg, tmp)
    assert named(result, "entry_hash_mismatch") == {victim["id"]}
    assert named(result, "leaf_mismatch") == {victim["id"]}
    assert named(result, "balance_mismatch") == {victim["id"]}
    # and through the command line: exit status 1, the entry named in the output
    runner = CliRunner()
    out = runner.invoke(
        audit_cli,
        ["verify", str(tmp / "export-2.ndjson"), "--keys", str(tmp / "keys.json")],
    )
    assert out.exit_code == 1, out.output
    assert f"[entry_hash_mismatch] entry {victim['id']}" in out.output


async def test_deleted_entry_is_named(union: tuple[Ledger, Path]) -> None:
    lg, tmp = union
    rows = await lg.rows("vol-a")
    victim = rows[2]  # the debit of 20
    conn = await owner(lg)
    await conn.execute("DELETE FROM ledger_entry WHERE id = $1", victim["id"])
    await conn.close()
    result = await verify_again(lg, tmp)
    assert named(result, "entry_missing") == {victim["id"]}
    # one fault, one finding: the hole in vol-a's chain is the deleted entry, said on it;
    # the refund of the deleted debit now refunds nothing visible, which is said too
    assert [(f.code, f.entry_id, f.account_id) for f in result.faults] == [
        ("entry_missing", victim["id"], "vol-a"),
        ("orphan_refund", next(r["id"] for r in rows if r["kind"] == "refund"), "vol-a"),
    ], [str(f) for f in result.faults]
    assert "unless its debit is an entry missing above" in result.faults[1].message
    assert f"seq 3 after entry {rows[1]['id']}, before entry {rows[3]['id']}" in (
        result.faults[0].message
    )
    assert "moved the balance by -20" in result.faults[0].message


async def test_entry_inserted_in_the_middle_is_named(union: tuple[Ledger, Path]) -> None:
    """A forged credit slipped in as vol-a's 3rd entry: later entries renumbered, the forged
    one chained properly to the 2nd and given a valid hash of its own."""
    lg, tmp = union
    rows = await lg.rows("vol-a")
    second = rows[1]
    conn = await owner(lg)
    await conn.execute(
        "UPDATE ledger_entry SET account_seq = account_seq + 1000 "
        "WHERE account_id = 'vol-a' AND account_seq >= 3"
    )
    await conn.execute(
        "UPDATE ledger_entry SET account_seq = account_seq - 999 "
        "WHERE account_id = 'vol-a' AND account_seq > 1000"
    )
    forged_id = await conn.fetchval("SELECT nextval('ledger_entry_id_seq')")
    forged_cause = "0b5e8f3a-1111-4c2d-8e9f-000000000001"
    forged_completion = "0b5e8f3a-1111-4c2d-8e9f-000000000002"
    fields = {
        "account_seq": 3,
        "kind": "credit",
        "amount": 500,
        "balance_after": second["balance_after"] + 500,
        "cause_event_id": forged_cause,
        "job_id": None,
        "completion_id": forged_completion,
        "redemption_id": None,
        "prev_hash": second["entry_hash"],
    }
    await conn.execute(
        """INSERT INTO ledger_entry (id, account_id, account_seq, kind, amount, balance_after,
               org_id, category, cause_event_id, cause_type, completion_id, occurred_at,
               prev_hash, entry_hash)
           VALUES ($1, 'vol-a', 3, 'credit', 500, $2, $3, $4, $5,
                   'jifen.tasks.completion.verified.v1', $6, $7, $8, $9)""",
        forged_id,
        fields["balance_after"],
        second["org_id"],
        second["category"],
        forged_cause,
        forged_completion,
        second["occurred_at"],
        second["entry_hash"],
        entry_hash_of(second, **fields),
    )
    await conn.close()
    result = await verify_again(lg, tmp)
    # named first, as inserted: it claims the place of vol-a's 3rd entry, which came first
    first = result.faults[0]
    assert (first.code, first.entry_id) == ("entry_inserted", forged_id), [
        str(f) for f in result.faults
    ]
    assert f"entry {rows[2]['id']}" in first.message and "own hash is valid" in first.message
    assert forged_id not in named(result, "entry_hash_mismatch")
    # then each renumbered entry, once (its other findings folded into it)
    assert [(f.code, f.entry_id) for f in result.faults[1:] if f.code != "root_mismatch"] == [
        ("entry_hash_mismatch", r["id"]) for r in rows[2:]
    ]
    # the renumbered entries no longer match their hashes or the tree
    assert named(result, "entry_hash_mismatch") == {r["id"] for r in rows[2:]}
    assert named(result, "leaf_mismatch") == {r["id"] for r in rows[2:]}


async def test_two_reordered_entries_are_named(union: tuple[Ledger, Path]) -> None:
    lg, tmp = union
    rows = await lg.rows("vol-a")
    x, y = rows[0]["id"], rows[1]["id"]
    conn = await owner(lg)
    await conn.execute("UPDATE ledger_entry SET id = -$1::bigint WHERE id = $1", x)
    await conn.execute("UPDATE ledger_entry SET id = $1 WHERE id = $2", x, y)
    await conn.execute("UPDATE ledger_entry SET id = $1 WHERE id = -$2::bigint", y, x)
    await conn.close()
    result = await verify_again(lg, tmp)
    assert named(result, "leaf_mismatch") == {x, y}
    # seq 1 now comes after seq 2, which links to it: one fault, the moved entry named
    assert [(f.code, f.entry_id) for f in result.faults if f.code != "root_mismatch"] == [
        ("entry_moved", y)
    ], [str(f) for f in result.faults]
    assert {f.position for f in result.findings if f.code == "changed_since_verified"} == {
        f.position for f in result.findings if f.code == "leaf_mismatch"
    }


async def test_rewritten_entry_with_its_own_hash_recomputed_is_named(
    union: tuple[Ledger, Path],
) -> None:
    lg, tmp = union
    rows = await lg.rows("vol-a")
    victim = rows[1]
    new_hash = entry_hash_of(victim, amount=130, balance_after=victim["balance_after"] + 100)
    conn = await owner(lg)
    await conn.execute(
        "UPDATE ledger_entry SET amount = 130, balance_after = balance_after + 100, "
        "entry_hash = $2 WHERE id = $1",
        victim["id"],
        new_hash,
    )
    await conn.close()
    result = await verify_again(lg, tmp)
    assert "entry_hash_mismatch" not in {f.code for f in result.findings}
    assert named(result, "leaf_mismatch") == {victim["id"]}
    assert named(result, "changed_since_verified") == {victim["id"]}
    # the next entry no longer links to it, nor adds up
    assert named(result, "chain_broken") == {rows[2]["id"]}
    assert named(result, "balance_mismatch") == {rows[2]["id"]}


async def test_consistent_forgery_is_caught_by_the_older_checkpoint(
    union: tuple[Ledger, Path],
) -> None:
    """The operator rewrites vol-a's 2nd credit, re-chains every later entry of vol-a,
    rebuilds the whole tree and signs a fresh checkpoint with its real key: the export is
    internally perfect, and only the union's older checkpoint can tell."""
    lg, tmp = union
    rows = await lg.rows("vol-a")
    conn = await owner(lg)
    prev, balance = rows[0]["entry_hash"], rows[0]["balance_after"]
    for r in rows[1:]:
        amount = 130 if r["id"] == rows[1]["id"] else r["amount"]
        balance += amount
        h = entry_hash_of(r, amount=amount, balance_after=balance, prev_hash=prev)
        await conn.execute(
            "UPDATE ledger_entry SET amount = $2, balance_after = $3, prev_hash = $4, "
            "entry_hash = $5 WHERE id = $1",
            r["id"],
            amount,
            balance,
            prev,
            h,
        )
        prev = h
    for t in ("audit_checkpoint", "merkle_node", "merkle_leaf"):
        await conn.execute(f"DELETE FROM {t}")  # noqa: S608 - fixed table names
    await store.sequence(conn, queries())
    await conn.close()
    result = await verify_again(lg, tmp)
    codes = {f.code for f in result.findings}
    # nothing inside the export is wrong...
    assert codes <= {"root_mismatch", "changed_since_verified"}, codes
    # ...but it contradicts the checkpoint of size 8 the union kept, and names what changed
    mismatch = [f for f in result.findings if f.code == "root_mismatch"]
    assert len(mismatch) == 1 and "size 8" in mismatch[0].message
    changed = [f.entry_id for f in result.findings if f.code == "changed_since_verified"]
    assert changed[0] == rows[1]["id"]
    assert set(changed) == {r["id"] for r in rows[1:] if r["id"] in changed}
    assert rows[1]["id"] in changed and rows[2]["id"] in changed  # within the first 8
