"""A union witness: cosigns a checkpoint only when it is consistent with the one it cosigned
before; the points service stores and serves the cosignatures; a rewritten history is refused."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from jifen.points.audit import store
from jifen.points.audit.domain.checkpoint import Checkpoint, cosignature_ok, public_key_from_raw
from jifen.points.audit.witness import Verdict, run_witness
from jifen.points.db import MIGRATIONS, queries
from tests.integration.points.test_audit_fixtures import Ledger, ledger_in, sample_batches

FreshDb = Callable[[Path], Awaitable[str]]


async def witness(lg: Ledger, tmp: Path, name: str = "riders-union-jiangmen") -> Verdict:
    return await run_witness(
        "http://points",
        lg.token(),
        name,
        tmp / "w.pem",
        tmp / f"state-{name}",
        transport=httpx.ASGITransport(app=lg.app),
    )


async def test_witness_cosigns_consistent_checkpoints_and_refuses_a_rewrite(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        batches = sample_batches(lg.book)
        early = await witness(lg, tmp_path)
        assert not early.ok and "no checkpoint yet" in early.message
        await lg.append(batches[0])
        await lg.checkpoint()
        first = await witness(lg, tmp_path)
        assert first.ok, first.message
        assert "first cosignature" in first.message

        await lg.append(batches[1])
        await lg.checkpoint()
        second = await witness(lg, tmp_path)
        assert second.ok and "consistent with 4" in second.message, second.message

        # the service serves the cosignature, and it verifies against the witness's key
        r = await lg.http.get("/v1/audit/checkpoints/8", headers=lg.auth())
        body = r.json()
        [cos] = body["cosignatures"]
        assert cos["witness"] == "riders-union-jiangmen"
        assert cosignature_ok(
            public_key_from_raw(base64.b64decode(cos["public_key"])),
            cos["witness"],
            cos["cosigned_at"],
            Checkpoint.from_json(body),
            base64.b64decode(cos["signature"]),
        )
        # the same witness name with another key is refused (no impersonation)
        await lg.append(batches[2])
        await lg.checkpoint()
        impostor = await run_witness(
            "http://points",
            lg.token(),
            "riders-union-jiangmen",
            tmp_path / "other.pem",
            tmp_path / "state-impostor",
            transport=httpx.ASGITransport(app=lg.app),
        )
        assert not impostor.ok and "cosigned before with another key" in impostor.message
        assert (await witness(lg, tmp_path)).ok  # the real one carries on

        # the operator rewrites vol-a's first credit, rebuilds the tree, signs a new head
        conn = await asyncpg.connect(lg.dsn)
        for t in (
            "ledger_entry",
            "merkle_leaf",
            "merkle_node",
            "audit_checkpoint",
            "audit_cosignature",
        ):
            await conn.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
        victim = (await lg.rows("vol-a"))[0]
        await conn.execute(
            "UPDATE ledger_entry SET category = 'forged' WHERE id = $1", victim["id"]
        )
        for t in ("audit_cosignature", "audit_checkpoint", "merkle_node", "merkle_leaf"):
            await conn.execute(f"DELETE FROM {t}")  # noqa: S608 - fixed table names
        await conn.close()
        await lg.append(batches[3])  # ... and carries on appending, so the head grows
        conn = await asyncpg.connect(lg.dsn)
        await store.make_checkpoint(conn, queries(), lg.keys_dir)
        await conn.close()

        refused = await witness(lg, tmp_path)
        assert not refused.ok
        assert "NOT consistent with the one of size 11" in refused.message, refused.message
        r = await lg.http.get("/v1/audit/checkpoints/latest", headers=lg.auth())
        assert r.json()["tree_size"] == 14 and r.json()["cosignatures"] == []
        # it keeps refusing: its state still holds the checkpoint it cosigned
        again = await witness(lg, tmp_path)
        assert not again.ok
