"""Migration 0011 (a ledger account is (org, account)) on a database filled by the previous
schema: the legacy entries stay as they were, new ones are appended by the real worker code
path, and the audit chain and tree still verify, for the operator and for each union, with
balances per (organisation, account) and tampering still caught.

The legacy ledger has the cross-organisation spend of issue #15: vol-x earned every point in
organisation A and B's reward spent 30 of them."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from jifen.kernel.contracts import Contracts, isoformat
from jifen.kernel.db import migrate
from jifen.kernel.settings import REPO_ROOT
from jifen.points.audit import store
from jifen.points.audit.client import fetch_export
from jifen.points.audit.domain.checkpoint import Checkpoint
from jifen.points.audit.domain.verify import EXPORT_FORMAT, Result, Verifier
from jifen.points.audit.offline import load_keys, save_checkpoint, verify_files
from jifen.points.db import MIGRATIONS, queries
from jifen.points.db.repo import LEDGER_COLUMNS, _row
from jifen.points.domain.chain import GENESIS
from jifen.points.domain.ledger import Head, Kind, Posting, append
from tests.integration.points.test_audit_fixtures import ledger_in
from tests.integration.points.test_ledger_exactly_once import FakeRecord

FreshDb = Callable[[Path], Awaitable[str]]
A, B, C = "org-a", "org-b", "org-c"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CONTRACTS = Contracts(REPO_ROOT / "schemas")
LAST_OLD = "0010"


def _legacy_posting(n: int, account: str, kind: Kind, amount: int, org: str) -> Posting:
    ref = str(uuid.uuid4())
    about_completion = kind in (Kind.CREDIT, Kind.REVERSAL)
    return Posting(
        event_id=str(uuid.uuid4()),
        event_type=(
            "jifen.tasks.completion.verified.v1"
            if about_completion
            else "jifen.redeem.redemption.placed.v1"
        ),
        account_id=account,
        kind=kind,
        amount=amount,
        org_id=org,
        category="meal_delivery" if about_completion else None,
        job_id=str(uuid.uuid4()) if about_completion else None,
        completion_id=ref if about_completion else None,
        redemption_id=None if about_completion else ref,
        occurred_at=T0 + timedelta(hours=n),
        reward_id=None if about_completion else str(uuid.uuid4()),
    )


# (account, kind, amount, the org that wrote it) in the order the old version appended them
LEGACY = [
    ("vol-x", Kind.CREDIT, 50, A),
    ("vol-y", Kind.CREDIT, 12, A),
    ("vol-x", Kind.CREDIT, 20, A),
    ("vol-x", Kind.DEBIT, -30, B),  # B's reward spent A's points (the bug)
    ("vol-z", Kind.CREDIT, 8, B),
    ("vol-x", Kind.CREDIT, 4, A),
]


async def _fill_as_previous_schema(dsn: str) -> None:
    """Entries chained per bare account_id with one running balance, and the projection
    keyed by account_id, exactly as the previous write path left them."""
    conn = await asyncpg.connect(dsn)
    try:
        heads: dict[str, Head] = {}
        rows = []
        for n, (account, kind, amount, org) in enumerate(LEGACY):
            head, entry = append(
                heads.get(account) or Head(account), _legacy_posting(n, account, kind, amount, org)
            )
            heads[account] = head
            entry_id = await conn.fetchval("SELECT nextval('ledger_entry_id_seq')")
            rows.append(_row(entry_id, entry, T0 + timedelta(hours=n, seconds=1)))
        await conn.copy_records_to_table("ledger_entry", records=rows, columns=LEDGER_COLUMNS)
        await conn.executemany(
            "INSERT INTO account (account_id, seq, balance, earned, spent, head_hash)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [(h.account_id, h.seq, h.balance, h.earned, h.spent, h.hash) for h in heads.values()],
        )
        # a decision the old two-person rule let through (raw strings compared)
        await conn.execute(
            "INSERT INTO adjustment (id, org_id, account_id, amount, reason, status, requested_by,"
            " decided_by) VALUES ($1, $2, 'vol-y', 5, 'old', 'rejected', 'ADM-A', 'adm-a')",
            uuid.uuid4(),
            A,
        )
    finally:
        await conn.close()


def _event(event_type: str, account: str, org: str, points: int) -> FakeRecord:
    now = datetime.now(UTC)
    data: dict[str, Any] = {"account_id": account, "org_id": org, "points": points}
    if "completion" in event_type:
        data.update(
            completion_id=str(uuid.uuid4()),
            job_id=str(uuid.uuid4()),
            community_id="grid",
            category="meal_delivery",
            verified_by="officer-li",
            verified_at=isoformat(now),
        )
        topic, source = "tasks.completions", "/jifen/tasks"
    else:
        data.update(
            redemption_id=str(uuid.uuid4()), reward_id=str(uuid.uuid4()), placed_at=isoformat(now)
        )
        topic, source = "redeem.redemptions", "/jifen/redeem"
    ev = CONTRACTS.new_event(event_type, source=source, subject=account, time=now, data=data)
    return FakeRecord(topic, 0, 0, account.encode(), orjson.dumps(ev))


VERIFIED = "jifen.tasks.completion.verified.v1"
PLACED = "jifen.redeem.redemption.placed.v1"


def _verify_full(rows: list[dict[str, Any]], keys: Any, saved: list[Any], cutover: int) -> Result:
    """The operator's view: every entry in full (export_rows with no organisation)."""
    cp = saved[-1]
    v = Verifier(keys, saved[:-1])
    v.feed_header(
        {
            "format": EXPORT_FORMAT,
            "start": 0,
            "end": cp.tree_size,
            "checkpoint": cp.to_json(),
            "legacy_cutover": cutover,
        }
    )
    v.feed_many(rows)
    return v.finish()


async def test_legacy_ledger_migrates_and_still_verifies(fresh_db: FreshDb, tmp_path: Path) -> None:
    old = tmp_path / "migrations-before"
    old.mkdir()
    for f in sorted(MIGRATIONS.glob("*.sql")):
        if f.name[:4] <= LAST_OLD:
            shutil.copy(f, old / f.name)
    assert sorted(p.name[:4] for p in old.glob("*.sql"))[-1] == LAST_OLD
    dsn = await fresh_db(old)
    await _fill_as_previous_schema(dsn)

    # the union signed (saved) a checkpoint of the legacy ledger before the upgrade
    keys_dir = tmp_path / "keys"
    conn = await asyncpg.connect(dsn)
    try:
        before = await store.make_checkpoint(conn, queries(), keys_dir)
    finally:
        await conn.close()
    assert before.tree_size == len(LEGACY)
    saved = tmp_path / "saved"
    save_checkpoint(saved, before)

    assert (await migrate(dsn, MIGRATIONS))[0] == "0011_ledger_per_org.sql"

    async with ledger_in(dsn, keys_dir) as lg:
        async with lg.pool.acquire() as conn:
            cutover = await conn.fetchval("SELECT last_legacy_entry_id FROM ledger_cutover")
            heads = {
                (r["org_id"], r["account_id"]): r for r in await conn.fetch("SELECT * FROM account")
            }
            legacy = await conn.fetch("SELECT * FROM ledger_entry ORDER BY id")
        assert cutover == len(LEGACY) == legacy[-1]["id"]
        # the projection, rebuilt per (org, account): A's and B's shares of vol-x apart
        assert {k: (h["seq"], h["balance"]) for k, h in heads.items()} == {
            (A, "vol-x"): (4, 74),
            (B, "vol-x"): (3, -30),
            (A, "vol-y"): (1, 12),
            (B, "vol-z"): (1, 8),
        }
        assert heads[(A, "vol-x")]["head_hash"] == legacy[5]["entry_hash"]

        # new entries through the real worker code path (decode, validate, plan, append)
        plan = await lg.worker.apply_records(
            [
                _event(VERIFIED, "vol-x", A, 10),
                _event(PLACED, "vol-x", A, 5),  # A's reward spends A's points
                _event(VERIFIED, "vol-x", B, 30),
                _event(VERIFIED, "vol-y", A, 1),
                _event(VERIFIED, "vol-x", C, 7),  # a first entry in a third organisation
            ]
        )
        assert not plan.refused and len(plan.entries) == 5
        new = {(e.posting.org_id, e.posting.account_id, e.posting.amount): e for e in plan.entries}
        first_a = new[(A, "vol-x", 10)]
        # A's chain continues from A's last legacy entry of the account
        assert (first_a.account_seq, first_a.prev_hash, first_a.balance_after) == (
            5,
            legacy[5]["entry_hash"],
            84,
        )
        assert (new[(A, "vol-x", -5)].account_seq, new[(A, "vol-x", -5)].balance_after) == (6, 79)
        first_b = new[(B, "vol-x", 30)]
        assert (first_b.account_seq, first_b.prev_hash, first_b.balance_after) == (
            4,
            legacy[3]["entry_hash"],
            0,
        )
        first_c = new[(C, "vol-x", 7)]
        assert (first_c.account_seq, first_c.prev_hash, first_c.balance_after) == (1, GENESIS, 7)

        # balances per (organisation, account) through the API
        for org, want in ((A, 79), (B, 0), (C, 7)):
            r = await lg.http.get("/v1/accounts/vol-x/balance", headers=lg.auth("auditor", org))
            assert r.status_code == 200, r.text
            assert r.json()["balance"] == want
            assert r.headers["cache-control"] == "no-store"
        r = await lg.http.get("/v1/accounts/vol-z/balance", headers=lg.auth("auditor", A))
        assert r.status_code == 404  # vol-z has entries in B only

        after = await lg.checkpoint()
        assert after["tree_size"] == len(LEGACY) + 5

        # the operator's full verification: legacy rule up to the cutover, new rule after,
        # and the checkpoint signed before the migration still holds
        keys = load_keys(await _keys_file(lg, tmp_path))
        async with lg.pool.acquire() as conn:
            rows = [r async for r in store.export_rows(conn, queries(), 0, 11, None)]
        cps = [before, Checkpoint.from_json(after)]
        full = _verify_full(rows, keys, cps, cutover)
        assert full.ok, [str(f) for f in full.findings]
        assert full.account("vol-x", A).balance == 79
        assert full.account("vol-x", B).balance == 0
        assert full.account("vol-x", B).min_balance == -30  # the legacy spend stays visible
        assert full.account("vol-x", C).balance == 7

        # each union's own export (others' entries as leaf hashes) verifies too
        for org, entries, balance in ((A, 7, 79), (B, 3, 0), (C, 1, 7)):
            path = tmp_path / f"export-{org}.ndjson"
            await fetch_export(
                "http://points",
                lg.token("auditor", org),
                path,
                None,
                transport=httpx.ASGITransport(app=lg.app),
            )
            header = orjson.loads(path.read_bytes().splitlines()[0])
            assert header["legacy_cutover"] == cutover
            result = verify_files([path], keys, saved, tmp_path / f"state-{org}")
            assert result.ok, (org, [str(f) for f in result.findings])
            assert result.entries_checked == entries
            assert result.account("vol-x", org).balance == balance

        # tampering as the database owner is still caught, on both sides of the cutover
        owner = await asyncpg.connect(dsn)
        try:
            await owner.execute("ALTER TABLE ledger_entry DISABLE TRIGGER USER")
            first_a_id = cutover + 1  # ids are taken in plan order: the first new entry
            for entry_id, amount in ((legacy[2]["id"], 200), (first_a_id, 1000)):
                await owner.execute(
                    "UPDATE ledger_entry SET amount = $2 WHERE id = $1", entry_id, amount
                )
            await owner.execute("ALTER TABLE ledger_entry ENABLE TRIGGER USER")
        finally:
            await owner.close()
        async with lg.pool.acquire() as conn:
            rows = [r async for r in store.export_rows(conn, queries(), 0, 11, None)]
        tampered = _verify_full(rows, keys, cps, cutover)
        named = {f.entry_id for f in tampered.findings if f.code == "entry_hash_mismatch"}
        assert named == {legacy[2]["id"], first_a_id}, [str(f) for f in tampered.findings]
        # and by union A, from its own export, against what it verified before
        path = tmp_path / "export-a-again.ndjson"
        await fetch_export(
            "http://points",
            lg.token("auditor", A),
            path,
            None,
            transport=httpx.ASGITransport(app=lg.app),
        )
        again = verify_files([path], keys, saved, tmp_path / f"state-{A}")
        codes = {(f.code, f.entry_id) for f in again.findings}
        assert ("entry_hash_mismatch", legacy[2]["id"]) in codes
        assert ("entry_hash_mismatch", first_a_id) in codes
        assert ("changed_since_verified", first_a_id) in codes


async def _keys_file(lg: Any, tmp_path: Path) -> Path:
    r = await lg.http.get("/v1/audit/keys", headers=lg.auth())
    path = tmp_path / "keys.json"
    path.write_bytes(r.content)
    return path
