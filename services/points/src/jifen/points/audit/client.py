"""HTTP side of the union's tools: download an export, page through the tasks and redeem
audit endpoints for reconciliation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from jifen.points.audit.domain.reconcile import Mismatch, reconcile


def _client(
    url: str, token: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, transport=transport, timeout=120
    )


def _write_json(path: Path, body: Any) -> None:
    path.write_text(json.dumps(body, indent=2) + "\n")


async def fetch_export(
    url: str,
    token: str,
    out: Path,
    keys_out: Path | None = None,
    tree_size: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    lines = 0
    async with _client(url, token, transport) as http:
        if keys_out is not None:
            r = await http.get("/v1/audit/keys")
            r.raise_for_status()
            _write_json(keys_out, r.json())
        params = {} if tree_size is None else {"tree_size": tree_size}
        async with http.stream("GET", "/v1/audit/export", params=params) as r:
            if r.status_code != 200:
                await r.aread()
                raise RuntimeError(f"export refused: {r.status_code} {r.text}")
            with out.open("wb") as f:
                async for chunk in r.aiter_bytes():
                    f.write(chunk)
                    lines += chunk.count(b"\n")
    return lines


async def pages(http: httpx.AsyncClient, path: str, limit: int = 500) -> AsyncIterator[Any]:
    """Items of a ``{"items": [...], "next_cursor": ...}`` endpoint, page after page."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        r = await http.get(path, params=params)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} → {r.status_code}: {r.text}")
        body = r.json()
        for item in body["items"]:
            yield item
        after = body.get("next_cursor")
        if not after or not body["items"]:
            return


async def ledger_entries(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    out = []
    async with http.stream("GET", "/v1/audit/export") as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"export refused: {r.status_code} {r.text}")
        first = True
        async for line in r.aiter_lines():
            if first or not line:
                first = False
                continue
            rec = orjson.loads(line)
            if "entry" in rec:
                out.append(rec["entry"])
    return out


async def run_reconcile(
    points_url: str,
    tasks_url: str,
    redeem_url: str,
    token: str,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    settle_seconds: float = 60.0,
) -> list[Mismatch]:
    t = transports or {}
    async with (
        _client(points_url, token, t.get("points")) as points,
        _client(tasks_url, token, t.get("tasks")) as tasks,
        _client(redeem_url, token, t.get("redeem")) as redeem,
    ):
        # sign a checkpoint first so the export covers everything committed now
        r = await points.post("/v1/audit/checkpoints")
        if r.status_code not in (200, 201):
            raise RuntimeError(f"checkpoint refused: {r.status_code} {r.text}")
        entries = await ledger_entries(points)
        completions = [c async for c in pages(tasks, "/v1/audit/completions")]
        redemptions = [x async for x in pages(redeem, "/v1/audit/redemptions")]
    return reconcile(
        completions,
        redemptions,
        entries,
        now=datetime.now(UTC),
        settle=timedelta(seconds=settle_seconds),
    )
