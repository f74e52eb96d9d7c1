"""A union audits the running system: after a real completion is credited, it asks for a
checkpoint, downloads the export and verifies it offline, checks an inclusion proof, and
reconciles the ledger against the tasks and redeem services' audit endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from jifen.points.audit.client import ledger_entries, pages
from jifen.points.audit.domain.merkle import verify_inclusion
from jifen.points.audit.domain.reconcile import reconcile
from jifen.points.audit.offline import load_keys, verify_files
from tests.e2e.test_typical_journey import balance, earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e
JIFEN = Path(sys.executable).with_name("jifen")

# findings that would mean the ledger or its tree is not what was signed (others, like a
# balance below zero after an adjustment made by another test, are facts to report, not forgery)
INTEGRITY = {
    "bad_export",
    "partial_export",
    "position_gap",
    "position_out_of_order",
    "entry_missing",
    "entry_inserted",
    "entry_moved",
    "malformed_entry",
    "leaf_mismatch",
    "entry_hash_mismatch",
    "chain_order",
    "chain_gap",
    "chain_broken",
    "balance_mismatch",
    "truncated_export",
    "no_checkpoint",
    "bad_signature",
    "ledger_shrank",
    "root_mismatch",
    "split_view",
    "changed_since_verified",
}


async def test_a_union_verifies_and_reconciles_the_running_ledger(
    apis: dict[str, Api], tmp_path: Path
) -> None:
    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    account = f"vol-{uuid.uuid4().hex[:8]}"
    completion = await earn(tasks, account, 35)

    async def credited() -> dict[str, Any] | None:
        b = await balance(points, account)
        return b if b["balance"] == 35 else None

    await eventually(credited, what="credit of 35 points")

    auditor = points.auth("auditor")
    r = await points.http.post("/v1/audit/checkpoints", headers=auditor)
    assert r.status_code in (200, 201), r.text
    checkpoint = r.json()
    token = auditor["Authorization"].removeprefix("Bearer ")

    # the export and the keys, then the offline verification
    keys = tmp_path / "keys.json"
    r = await points.http.get("/v1/audit/keys", headers=auditor)
    keys.write_text(r.text)
    export = tmp_path / "export.ndjson"
    async with points.http.stream(
        "GET", "/v1/audit/export", params={"tree_size": checkpoint["tree_size"]}, headers=auditor
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        with export.open("wb") as f:
            async for chunk in resp.aiter_bytes():
                f.write(chunk)
    result = verify_files([export], load_keys(keys), tmp_path / "saved", tmp_path / "state")
    broken = [str(f) for f in result.findings if f.code in INTEGRITY]
    assert not broken, broken
    assert result.tree_size == checkpoint["tree_size"]
    assert result.account(account).balance == 35
    assert result.account(account).earned == 35

    # an inclusion proof of the volunteer's credit, checked against the signed root
    history = await points.http.get(f"/v1/audit/accounts/{account}/history", headers=auditor)
    [item] = history.json()["items"]
    assert item["entry"]["completion_id"] == completion["id"]
    r = await points.http.get(
        f"/v1/audit/entries/{item['entry']['entry_id']}/inclusion",
        params={"tree_size": checkpoint["tree_size"]},
        headers=auditor,
    )
    proof = r.json()
    assert verify_inclusion(
        proof["position"],
        checkpoint["tree_size"],
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(checkpoint["root_hash"]),
    )

    # `jifen audit reconcile`, the command a union runs, against the three running services
    proc = await asyncio.create_subprocess_exec(
        str(JIFEN),
        "audit",
        "reconcile",
        "--json",
        "--settle",
        "0",
        env={
            **os.environ,
            "JIFEN_POINTS_URL": points.base,
            "JIFEN_TASKS_URL": tasks.base,
            "JIFEN_REDEEM_URL": redeem.base,
            "JIFEN_AUDIT_TOKEN": token,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode in (0, 1), err.decode()
    assert re.fullmatch(rb"\d+ mismatches", err.strip()), err.decode()
    assert completion["id"].encode() not in out, out.decode()

    # the same matching, shown to catch a ledger that lost this credit
    hdr = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=tasks.base, headers=hdr, timeout=30) as t,
        httpx.AsyncClient(base_url=redeem.base, headers=hdr, timeout=30) as rd,
        httpx.AsyncClient(base_url=points.base, headers=hdr, timeout=60) as p,
    ):
        completions = [c async for c in pages(t, "/v1/audit/completions")]
        redemptions = [x async for x in pages(rd, "/v1/audit/redemptions")]
        entries = await ledger_entries(p)
    mine = [c for c in completions if c["completion_id"] == completion["id"]]
    assert len(mine) == 1 and mine[0]["points"] == 35
    found = reconcile(completions, redemptions, entries)
    assert not [m for m in found if m.reference == completion["id"]], found
    # a ledger that lost this credit is caught, by name
    lost = [e for e in entries if e.get("completion_id") != completion["id"]]
    missing = [m for m in reconcile(completions, redemptions, lost) if m.code == "credit_missing"]
    assert [(m.reference, m.account_id) for m in missing if m.reference == completion["id"]] == [
        (completion["id"], account)
    ]


async def test_reconcile_finds_a_verified_completion_that_was_never_credited(
    apis: dict[str, Api], fresh_db: Any, tmp_path: Path
) -> None:
    """The real `jifen audit reconcile` against the real tasks and redeem services and a real
    points API whose ledger (a fresh database) never received the credit."""
    from jifen.devtools.stack import free_port
    from jifen.points.db import MIGRATIONS

    tasks, points, redeem = apis["tasks"], apis["points"], apis["redeem"]
    account = f"vol-{uuid.uuid4().hex[:8]}"
    completion = await earn(tasks, account, 12)
    empty_ledger = await fresh_db(MIGRATIONS)
    port = free_port()
    env = {
        **tasks.stack.env(),
        "JIFEN_POINTS_DATABASE_URL": empty_ledger,
        "JIFEN_POINTS_MIGRATE_DATABASE_URL": empty_ledger,
        "JIFEN_POINTS_PORT": str(port),
    }
    api = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jifen.points",
        "api",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    other = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=other, timeout=5) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=60, what="a second points API on an empty ledger")
        token = points.auth("auditor")["Authorization"].removeprefix("Bearer ")
        proc = await asyncio.create_subprocess_exec(
            str(JIFEN),
            "audit",
            "reconcile",
            "--json",
            "--settle",
            "0",
            env={
                **os.environ,
                "JIFEN_POINTS_URL": other,
                "JIFEN_TASKS_URL": tasks.base,
                "JIFEN_REDEEM_URL": redeem.base,
                "JIFEN_AUDIT_TOKEN": token,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        api.terminate()
        await api.wait()
    assert proc.returncode == 1, err.decode()
    found = [json.loads(line) for line in out.splitlines()]
    mine = [m for m in found if m["reference"] == completion["id"]]
    assert [(m["code"], m["account_id"]) for m in mine] == [("credit_missing", account)]
