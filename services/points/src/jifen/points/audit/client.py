"""HTTP side of the union's tools: download an export, page through the tasks and redeem
audit endpoints for reconciliation."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from jifen.points.audit.domain.reconcile import Mismatch, reconcile
from jifen.points.audit.offline import AuditError

__all__ = ["AuditError", "fetch_export", "refused", "run_reconcile"]


def _client(
    url: str, token: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, transport=transport, timeout=120
    )


def _write_json(path: Path, body: Any) -> None:
    path.write_text(json.dumps(body, indent=2) + "\n")


def refused(r: httpx.Response, what: str) -> AuditError:
    """One line for a refusal of the audit API (Chinese first, English beside it)."""
    if r.status_code == 401:
        return AuditError(
            "令牌被拒绝 the points service refused the token (401): set JIFEN_AUDIT_TOKEN (or "
            "--token) to a valid auditor's token, e.g. `jifen token create --role auditor "
            "--org <your organisation> --subject <you>`"
        )
    if r.status_code == 403:
        return AuditError(
            "无审计权限 this token may not use the audit API (403): use a token with the "
            "auditor role"
        )
    try:
        detail = str(r.json().get("detail", ""))
    except (ValueError, AttributeError):
        detail = r.text
    detail = " ".join(detail.split())[:200]
    if r.status_code == 404 and "checkpoint" in detail:
        return AuditError(
            f"尚无签名检查点 {detail} (404): ask the operator to sign one "
            "(POST /v1/audit/checkpoints), then fetch again"
        )
    return AuditError(f"服务拒绝 the points service answered {r.status_code} to {what}: {detail}")


Progress = Callable[[int, int, int | None], Any]  # (bytes, entries, entries expected)


def _scan_part(part: Path) -> tuple[dict[str, Any] | None, int, int, int]:
    """An interrupted download: (its header, entry lines, last position, bytes of complete
    lines). A torn last line is dropped; a file without a readable header is no use."""
    header: dict[str, Any] | None = None
    entries, last, good = 0, -1, 0
    with part.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                break
            if header is None:
                if not isinstance(rec, dict) or "checkpoint" not in rec:
                    return None, 0, -1, 0
                header = rec
            else:
                entries += 1
                last = rec.get("position", last + 1)
            good += len(line)
    return header, entries, last, good


async def fetch_export(
    url: str,
    token: str,
    out: Path,
    keys_out: Path | None = None,
    tree_size: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: Progress | None = None,
    resume: bool = True,
) -> int:
    """Download an export to ``out``: into ``out.part`` first, renamed when complete, so a
    failed fetch never leaves a truncated export where one is expected; an ``out.part`` left
    by an interrupted fetch is continued from its last complete line. Returns the lines
    written (header included)."""
    part = out.with_name(out.name + ".part")
    header: dict[str, Any] | None = None
    entries, start, done = 0, 0, 0
    if resume and part.exists():
        header, entries, last, good = _scan_part(part)
        if header is not None:
            with part.open("r+b") as f:
                f.truncate(good)
            tree_size = int(header["checkpoint"]["tree_size"])
            start, done = (last + 1 if entries else int(header.get("start", 0))), good
    async with _client(url, token, transport) as http:
        if keys_out is not None:
            keys = [k async for k in pages(http, "/v1/audit/keys")]
            tmp = keys_out.with_name(keys_out.name + ".part")
            _write_json(tmp, keys)
            tmp.replace(keys_out)
        params: dict[str, int] = {} if tree_size is None else {"tree_size": tree_size}
        if start:
            params["start"] = start
        async with http.stream("GET", "/v1/audit/export", params=params) as r:
            if r.status_code != 200:
                await r.aread()
                raise refused(r, "GET /v1/audit/export")
            with part.open("ab" if header is not None else "wb") as f:
                expected: int | None = None
                if header is not None:
                    expected = int(header["end"]) - int(header.get("start", 0))
                pending = b""
                got_header = False
                try:
                    async for chunk in r.aiter_bytes():
                        if not got_header:
                            pending += chunk
                            nl = pending.find(b"\n")
                            if nl < 0:
                                continue
                            line, chunk = pending[: nl + 1], pending[nl + 1 :]
                            got_header = True
                            fresh = orjson.loads(line)
                            if header is None:
                                header = fresh
                                expected = int(fresh["end"]) - int(fresh.get("start", 0))
                                f.write(line)
                                done += len(line)
                            elif fresh["checkpoint"] != header["checkpoint"]:
                                raise AuditError(
                                    f"续传失败 {part} was fetched for another checkpoint: "
                                    "delete it and fetch again"
                                )
                        f.write(chunk)
                        done += len(chunk)
                        entries += chunk.count(b"\n")
                        if on_progress is not None:
                            on_progress(done, entries, expected)
                except (httpx.TransportError, httpx.StreamError) as exc:
                    raise AuditError(
                        f"下载中断 the download stopped after {entries} entries "
                        f"({type(exc).__name__}); run the same `jifen audit fetch` again to "
                        f"resume from {part}"
                    ) from exc
                f.flush()
                os.fsync(f.fileno())
    if header is None:
        raise AuditError(
            f"不是导出 the server sent no export header to {url}: is JIFEN_POINTS_URL the points "
            "service?"
        )
    if expected is not None and entries < expected:
        raise AuditError(
            f"下载不完整 the export stopped after {entries} of {expected} entries; run the "
            f"same `jifen audit fetch` again to resume from {part}"
        )
    part.replace(out)
    return entries + 1


async def fetch_signals(
    url: str, token: str, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, Any]:
    """The points service's live integrity flags (GET /v1/signals), for the report."""
    async with _client(url, token, transport) as http:
        r = await http.get("/v1/signals")
        if r.status_code != 200:
            raise refused(r, "GET /v1/signals")
        body: dict[str, Any] = r.json()
        return body


async def pages(http: httpx.AsyncClient, path: str, limit: int = 1000) -> AsyncIterator[Any]:
    """Items of a list endpoint (``{"items": [...], "next_cursor": ...}``, the one list
    convention of every service), page after page."""
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = await http.get(path, params=params)
        if r.status_code != 200:
            raise refused(r, f"GET {path}")
        body = r.json()
        for item in body["items"]:
            yield item
        cursor = body.get("next_cursor")
        if not cursor or not body["items"]:
            return


async def ledger_entries(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    out = []
    async with http.stream("GET", "/v1/audit/export") as r:
        if r.status_code != 200:
            await r.aread()
            raise refused(r, "GET /v1/audit/export")
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
            raise refused(r, "POST /v1/audit/checkpoints")
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
