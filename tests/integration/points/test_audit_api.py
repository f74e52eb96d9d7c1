"""The audit API on a real ledger in a fresh database: checkpoints, proofs, export, history,
keys, cosignatures, and who may see what."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from jifen.points.audit import store
from jifen.points.audit.domain.checkpoint import Checkpoint, public_key_from_raw
from jifen.points.audit.domain.merkle import verify_consistency, verify_inclusion
from jifen.points.audit.offline import load_keys, verify_files
from jifen.points.db import MIGRATIONS, queries
from tests.integration.points.test_audit_fixtures import ORG, OTHER_ORG, ledger_in, sample_batches

FreshDb = Callable[[Path], Awaitable[str]]


async def test_checkpoints_proofs_and_export_verify(fresh_db: FreshDb, tmp_path: Path) -> None:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        batches = sample_batches(lg.book)
        for b in batches[:2]:
            await lg.append(b)
        first = await lg.checkpoint()
        assert first["tree_size"] == 8
        # asking again without new entries gives the same checkpoint back
        again = await lg.http.post("/v1/audit/checkpoints", headers=lg.auth())
        assert again.status_code == 200 and again.json()["root_hash"] == first["root_hash"]
        assert (
            await lg.http.post("/v1/audit/checkpoints", headers=lg.auth("admin"))
        ).status_code == 200
        for b in batches[2:]:
            await lg.append(b)
        second = await lg.checkpoint()
        assert second["tree_size"] == 14

        keys = (await lg.http.get("/v1/audit/keys", headers=lg.auth())).json()["items"]
        pub = {k["key_id"]: public_key_from_raw(base64.b64decode(k["public_key"])) for k in keys}
        for cp in (first, second):
            c = Checkpoint.from_json(cp)
            pub[c.key_id].verify(c.signature, c.body())  # raises if it does not hold

        r = await lg.http.get(
            "/v1/audit/consistency", params={"first": 8, "second": 14}, headers=lg.auth()
        )
        assert r.status_code == 200, r.text
        proof = [bytes.fromhex(h) for h in r.json()["proof"]]
        assert verify_consistency(
            8,
            14,
            bytes.fromhex(first["root_hash"]),
            bytes.fromhex(second["root_hash"]),
            proof,
        )

        # an inclusion proof for every entry of the organisation, against the latest checkpoint
        history = await lg.http.get("/v1/audit/accounts/vol-a/history", headers=lg.auth())
        assert history.status_code == 200, history.text
        entries = history.json()["items"]
        assert [e["entry"]["account_seq"] for e in entries] == [1, 2, 3, 4, 5, 6, 7]
        assert [e["entry"]["balance_after"] for e in entries] == [40, 70, 50, 65, 70, 90, 102]
        for e in entries:
            r = await lg.http.get(
                f"/v1/audit/entries/{e['entry']['entry_id']}/inclusion", headers=lg.auth()
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert verify_inclusion(
                body["position"],
                body["checkpoint"]["tree_size"],
                bytes.fromhex(body["leaf_hash"]),
                [bytes.fromhex(h) for h in body["proof"]],
                bytes.fromhex(second["root_hash"]),
            )

        # the export: full content for the union's organisation, leaf hashes for the other
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
        lines = [orjson.loads(x) for x in export.read_bytes().splitlines()]
        assert lines[0]["checkpoint"]["tree_size"] == 14 and len(lines) == 15
        assert {x["entry"]["org_id"] for x in lines[1:] if "entry" in x} == {ORG}
        assert sum(1 for x in lines[1:] if x.get("redacted")) == 2
        result = verify_files([export], load_keys(tmp_path / "keys.json"))
        assert result.ok, [str(f) for f in result.findings]
        assert result.account("vol-a").balance == 102
        assert result.account("vol-b").balance == 60  # 25 credited, reversed, then 60
        assert result.account("vol-c").balance == 5


async def test_only_auditors_of_the_organisation_see_content(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        await lg.append(sample_batches(lg.book)[0])
        await lg.checkpoint()
        for role in ("volunteer", "officer", "admin", "app"):
            r = await lg.http.get("/v1/audit/checkpoints/latest", headers=lg.auth(role))
            assert r.status_code == 403, (role, r.text)
        assert (await lg.http.get("/v1/audit/checkpoints/latest")).status_code == 401
        other = lg.auth("auditor", OTHER_ORG)
        r = await lg.http.get("/v1/audit/accounts/vol-a/history", headers=other)
        assert r.status_code == 404
        entry_id = (await lg.rows("vol-a"))[0]["id"]
        r = await lg.http.get(f"/v1/audit/entries/{entry_id}/inclusion", headers=other)
        assert r.status_code == 404
        r = await lg.http.get(f"/v1/audit/entries/{entry_id}/inclusion", headers=lg.auth())
        assert r.status_code == 200
        # an entry placed in the tree after the latest checkpoint: ask for a newer one
        await lg.append(sample_batches(lg.book)[1][:1])
        async with lg.pool.acquire() as conn:
            assert await store.sequence(conn, queries()) == 1
        newest = (await lg.rows("vol-c"))[0]["id"]
        r = await lg.http.get(f"/v1/audit/entries/{newest}/inclusion", headers=lg.auth())
        assert r.status_code == 409 and r.json()["reason"] == "not_yet_checkpointed", r.text
        r = await lg.http.get(
            "/v1/audit/consistency", params={"first": 5, "second": 2}, headers=lg.auth()
        )
        assert r.status_code == 422 and "must not exceed" in r.json()["detail"]
        r = await lg.http.get(
            "/v1/audit/consistency", params={"first": 1, "second": 99}, headers=lg.auth()
        )
        assert r.status_code == 404
        r = await lg.http.post(
            "/v1/audit/checkpoints/4/cosignatures",
            headers=lg.auth(),
            json={
                "witness": "u",
                "public_key": "AAAA",
                "cosigned_at": "x",
                "signature": "",
                "x": 1,
            },
        )
        assert r.status_code == 422


async def test_key_rotation_keeps_old_checkpoints_verifiable(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from jifen.points.audit.cli import app as audit_cli

    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        batches = sample_batches(lg.book)
        await lg.append(batches[0])
        old = await lg.checkpoint()
        out = CliRunner().invoke(audit_cli, ["rotate-key", "--keys-dir", str(lg.keys_dir)])
        assert out.exit_code == 0, out.output
        await lg.append(batches[1])
        new = await lg.checkpoint()
        assert new["key_id"] != old["key_id"]
        keys = (await lg.http.get("/v1/audit/keys", headers=lg.auth())).json()["items"]
        assert {k["key_id"] for k in keys} == {old["key_id"], new["key_id"]}
        # the union's saved checkpoint, signed by the retired key, still checks out
        saved = tmp_path / "saved"
        saved.mkdir()
        (saved / "old.json").write_text(orjson.dumps(old).decode())
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
        result = verify_files([export], load_keys(tmp_path / "keys.json"), saved)
        assert result.ok, [str(f) for f in result.findings]
        # without the retired key, that checkpoint cannot be trusted, and it says so
        only_new = [k for k in keys if k["key_id"] == new["key_id"]]
        (tmp_path / "new-only.json").write_text(orjson.dumps(only_new).decode())
        result = verify_files([export], load_keys(tmp_path / "new-only.json"), saved)
        assert [f.code for f in result.findings] == ["bad_signature"]


async def test_background_loop_places_entries_and_signs_checkpoints(
    fresh_db: FreshDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from prometheus_client import REGISTRY

    from jifen.points.audit.loop import audit_loop
    from jifen.points.settings import PointsSettings
    from tests.helpers import eventually

    monkeypatch.setenv("JIFEN_POINTS_AUDIT_SEQUENCE_SECONDS", "0.05")
    monkeypatch.setenv("JIFEN_POINTS_AUDIT_CHECKPOINT_SECONDS", "0")
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        settings = PointsSettings(database_url=lg.dsn, keys_dir=lg.keys_dir)
        placed = "jifen_points_audit_entries_placed_total"
        before = REGISTRY.get_sample_value(placed) or 0.0
        task = asyncio.create_task(audit_loop(settings, lg.pool))
        try:
            for batch in sample_batches(lg.book):
                await lg.append(batch)

            async def signed_all() -> dict[str, object] | None:
                r = await lg.http.get("/v1/audit/checkpoints/latest", headers=lg.auth())
                body: dict[str, object] = r.json()
                return body if r.status_code == 200 and body["tree_size"] == 14 else None

            await eventually(signed_all, timeout=20, what="a checkpoint covering all 14 entries")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        r = await lg.http.get("/v1/audit/checkpoints", headers=lg.auth())
        sizes = [c["tree_size"] for c in r.json()["items"]]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] == 14
        assert REGISTRY.get_sample_value(placed) == before + 14  # the operator can see it


async def test_export_by_range(fresh_db: FreshDb, tmp_path: Path) -> None:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        for b in sample_batches(lg.book)[:2]:
            await lg.append(b)
        await lg.checkpoint()
        r = await lg.http.get("/v1/audit/export", params={"start": 3, "end": 6}, headers=lg.auth())
        assert r.status_code == 200, r.text
        lines = [orjson.loads(x) for x in r.content.splitlines()]
        assert (lines[0]["start"], lines[0]["end"]) == (3, 6)
        assert [x["position"] for x in lines[1:]] == [3, 4, 5]
        r = await lg.http.get("/v1/audit/export", params={"start": 3, "end": 9}, headers=lg.auth())
        assert r.status_code == 422 and "not inside checkpoint size 8" in r.json()["detail"]
        r = await lg.http.get("/v1/audit/export", params={"tree_size": 5}, headers=lg.auth())
        assert r.status_code == 404 and "no checkpoint of tree size 5" in r.json()["detail"]


async def test_one_person_in_two_organisations_is_two_accounts_to_auditors(
    fresh_db: FreshDb, tmp_path: Path
) -> None:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as lg:
        b = lg.book
        await lg.append([b.credit("vol-m", 40), b.credit("vol-m", 9, OTHER_ORG)])
        await lg.append([b.debit("vol-m", 5, OTHER_ORG), b.credit("vol-m", 1)])
        await lg.checkpoint()
        ours = await lg.http.get("/v1/audit/accounts/vol-m/history", headers=lg.auth())
        theirs = await lg.http.get(
            "/v1/audit/accounts/vol-m/history", headers=lg.auth("auditor", OTHER_ORG)
        )
        assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
        for body, org, want in (
            (ours.json(), ORG, [(1, 40), (2, 41)]),
            (theirs.json(), OTHER_ORG, [(1, 9), (2, 4)]),
        ):
            got = [(e["entry"]["account_seq"], e["entry"]["balance_after"]) for e in body["items"]]
            assert got == want and {e["entry"]["org_id"] for e in body["items"]} == {org}
        # an auditor of a third organisation learns nothing of either
        r = await lg.http.get(
            "/v1/audit/accounts/vol-m/history", headers=lg.auth("auditor", "third-org")
        )
        assert r.status_code == 404
        # each union's export verifies on its own, with its own balance of the person
        export = await lg.export(tmp_path / "export.ndjson", tmp_path / "keys.json")
        header = orjson.loads(export.read_bytes().splitlines()[0])
        assert header["legacy_cutover"] == 0  # a ledger begun under the per-organisation rule
        result = verify_files([export], load_keys(tmp_path / "keys.json"))
        assert result.ok, [str(f) for f in result.findings]
        assert result.redacted == 2 and result.account("vol-m", ORG).balance == 41
