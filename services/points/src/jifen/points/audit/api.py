"""The audit API: for the auditor role only and read-only (asking for a fresh checkpoint and
handing in a witness cosignature are the only writes, and neither touches the ledger).

Checkpoints and proofs carry hashes only, so they are global; entry content (export,
inclusion proofs, account history) is limited to the auditor's organisation, and other
organisations' entries appear in the export as their leaf hash alone so the tree still checks.
An account's history is the (auditor's organisation, account) chain: the same person's
entries in another organisation belong to another account and are not listed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import asyncpg
import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.db import Queries
from jifen.kernel.deps import Conn, Q
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import Refusal
from jifen.points.audit import keys as audit_keys
from jifen.points.audit import store
from jifen.points.audit.domain import c2sp
from jifen.points.audit.domain.canonical import LEAF_FIELDS, entry_from_row
from jifen.points.audit.domain.checkpoint import (
    ORIGIN,
    Checkpoint,
    b64,
    cosignature_ok,
    public_key_from_raw,
    raw_public_key,
)
from jifen.points.audit.domain.verify import EXPORT_FORMAT
from jifen.points.domain.chain import CANONICAL_FIELDS
from jifen.points.domain.ledger import no_account

Auditor = Annotated[Principal, require(Role.AUDITOR)]
Requester = Annotated[Principal, require(Role.AUDITOR, Role.ADMIN)]
MAX_SIZE = 2**62
INT4_MAX = 2**31 - 1  # account_seq is an integer column


router = APIRouter(prefix="/v1/audit", tags=["audit"])


class CosignatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    witness: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    public_key: str = Field(description="The witness's Ed25519 public key, 32 raw bytes, base64.")
    cosigned_at: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
    signature: str = Field(description="Ed25519 signature of the cosignature body, base64.")


class C2spCosignatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(description="The witness's Ed25519 public key, 32 raw bytes, base64.")
    line: str = Field(
        max_length=1000,
        description="The witness's tlog-cosignature/v1 signature line: "
        "'— <key name> base64(key ID || u64 timestamp || Ed25519 signature)'.",
    )


# a C2SP cosignature is kept in the same table; its cosigned_at says which form it is
C2SP_PREFIX = "cosignature/v1:"
# the C2SP form is text: documented next to the JSON one
C2SP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The checkpoint (JSON), or with format=c2sp its C2SP signed note.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
Format = Annotated[
    Literal["json", "c2sp"],
    Query(description="json, or c2sp: the C2SP tlog-checkpoint signed note (text/plain)."),
]


def _b64(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(
            422, Said(f"{what} 不是 base64 编码", f"{what} is not base64")
        ) from None
    if len(raw) != size:
        raise HTTPException(
            422,
            Said(
                f"{what} 应为 {size} 字节，收到 {len(raw)} 字节",
                f"{what} must be {size} bytes, got {len(raw)}",
            ),
        )
    return raw


async def _with_cosignatures(
    conn: asyncpg.Connection, q: Queries, cps: list[Checkpoint]
) -> list[dict[str, Any]]:
    rows = await conn.fetch(q["audit_cosignatures"], [c.tree_size for c in cps])
    out = []
    for c in cps:
        body = c.to_json()
        body["cosignatures"] = [_cosignature_json(r) for r in rows if r["tree_size"] == c.tree_size]
        out.append(body)
    return out


def _c2sp_cosignature(r: asyncpg.Record) -> c2sp.Cosignature | None:
    at: str = r["cosigned_at"]
    if not at.startswith(C2SP_PREFIX):
        return None
    return c2sp.Cosignature(r["witness"], int(at[len(C2SP_PREFIX) :]), bytes(r["signature"]))


def _cosignature_json(r: asyncpg.Record) -> dict[str, Any]:
    body: dict[str, Any] = {
        "witness": r["witness"],
        "public_key": b64(bytes(r["public_key"])),
        "cosigned_at": r["cosigned_at"],
        "signature": b64(bytes(r["signature"])),
        "format": "jifen.points.cosignature.v1",
    }
    cos = _c2sp_cosignature(r)
    if cos is not None:
        body.update(
            format="tlog-cosignature/v1",
            timestamp=cos.timestamp,
            line=cos.line(bytes(r["public_key"])),
        )
    return body


async def _c2sp_note(
    request: Request, conn: asyncpg.Connection, q: Queries, cp: Checkpoint
) -> Response:
    """The checkpoint as a C2SP tlog-checkpoint signed note: the log's signature line (the
    operator's key, key name = origin), then every tlog-cosignature/v1 handed in."""
    key = audit_keys.signer(request.app.state.settings.keys_dir, cp.key_id)
    if key is None:
        raise HTTPException(
            404,
            Said(
                f"检查点 {cp.tree_size} 由密钥 {cp.key_id} 签名，本服务已不再持有该密钥；"
                "请索取更新的检查点",
                f"checkpoint {cp.tree_size} was signed with key {cp.key_id}, which this service "
                "no longer holds; ask for a newer checkpoint",
            ),
        )
    lines = [c2sp.sign_checkpoint_note(key, cp)]
    for r in await conn.fetch(q["audit_cosignatures"], [cp.tree_size]):
        cos = _c2sp_cosignature(r)
        if cos is not None:
            lines.append(cos.line(bytes(r["public_key"])))
    return Response(c2sp.note(cp, lines), media_type=c2sp.MEDIA_TYPE)


async def _checkpoint(conn: asyncpg.Connection, q: Queries, size: int | None) -> Checkpoint:
    row = await (
        conn.fetchrow(q["audit_latest_checkpoint"])
        if size is None
        else conn.fetchrow(q["audit_checkpoint_at"], size)
    )
    if row is None:
        if size is None:
            raise NotFound(Said("还没有签过检查点", "no checkpoint has been signed yet"))
        raise NotFound(Said(f"没有树大小为 {size} 的检查点", f"no checkpoint of tree size {size}"))
    return store.checkpoint_from_row(row)


@router.get(
    "/keys",
    response_model=Page[dict[str, str]],
    summary="Public keys that sign checkpoints (old keys are kept)",
)
async def public_keys(request: Request, who: Auditor, paging: Paging) -> Page[dict[str, str]]:
    keys_dir = request.app.state.settings.keys_dir
    audit_keys.current_signer(keys_dir)  # so a key exists to publish before the first checkpoint
    keys = [
        {
            "key_id": kid,
            "algorithm": "Ed25519",
            "public_key": b64(raw_public_key(k)),
            # the same key as a C2SP signed-note verifier key (what a witness is given)
            "c2sp_vkey": c2sp.vkey(ORIGIN, k),
        }
        for kid, k in audit_keys.public_keys(keys_dir).items()
    ]
    return paging.slice(keys, lambda k: (k["key_id"],), str)


@router.get(
    "/checkpoints/latest",
    summary="The newest signed checkpoint (format=c2sp: as a C2SP tlog-checkpoint note)",
    response_model=None,
    responses=C2SP_RESPONSE,
)
async def latest(
    request: Request, conn: Conn, q: Q, who: Auditor, format: Format = "json"
) -> dict[str, Any] | Response:
    cp = await _checkpoint(conn, q, None)
    if format == "c2sp":
        return await _c2sp_note(request, conn, q, cp)
    return (await _with_cosignatures(conn, q, [cp]))[0]


@router.get(
    "/checkpoints",
    response_model=Page[dict[str, Any]],
    summary="Checkpoint history, newest first",
)
async def history(conn: Conn, q: Q, who: Auditor, paging: Paging) -> Page[dict[str, Any]]:
    (before,) = paging.after(int)
    rows = await conn.fetch(
        q["audit_checkpoints_page"],
        MAX_SIZE if before is None else min(before, MAX_SIZE),
        paging.fetch,
    )
    page, cursor = paging.cut(rows, lambda r: (r["tree_size"],))
    cps = [store.checkpoint_from_row(r) for r in page]
    return Page(items=await _with_cosignatures(conn, q, cps), next_cursor=cursor)


@router.get(
    "/checkpoints/{tree_size}",
    summary="The checkpoint of one tree size (format=c2sp: as a C2SP tlog-checkpoint note)",
    response_model=None,
    responses=C2SP_RESPONSE,
)
async def checkpoint_at(
    request: Request,
    conn: Conn,
    q: Q,
    who: Auditor,
    tree_size: Annotated[int, Path(ge=0, le=MAX_SIZE)],
    format: Format = "json",
) -> dict[str, Any] | Response:
    cp = await _checkpoint(conn, q, tree_size)
    if format == "c2sp":
        return await _c2sp_note(request, conn, q, cp)
    return (await _with_cosignatures(conn, q, [cp]))[0]


@router.post("/checkpoints", summary="Sign a checkpoint of the ledger as it stands now")
async def new_checkpoint(
    request: Request, response: Response, conn: Conn, q: Q, who: Requester
) -> dict[str, Any]:
    latest = await conn.fetchrow(q["audit_latest_checkpoint"])
    cp = await store.make_checkpoint(conn, q, request.app.state.settings.keys_dir)
    response.status_code = 201 if latest is None or cp.tree_size > latest["tree_size"] else 200
    return (await _with_cosignatures(conn, q, [cp]))[0]


@router.post(
    "/checkpoints/{tree_size}/cosignatures",
    status_code=201,
    summary="Hand in a witness cosignature of a checkpoint",
)
async def add_cosignature(
    conn: Conn,
    q: Q,
    who: Auditor,
    body: CosignatureIn,
    tree_size: Annotated[int, Path(ge=0, le=MAX_SIZE)],
) -> dict[str, Any]:
    cp = await _checkpoint(conn, q, tree_size)
    raw_key = _b64(body.public_key, 32, "public_key")
    sig = _b64(body.signature, 64, "signature")
    known = await conn.fetchval(q["audit_witness_key"], body.witness)
    if known is not None and bytes(known) != raw_key:
        raise Refusal(
            "witness_key_changed",
            Said(
                f"见证方 {body.witness} 之前用另一把密钥副署过",
                f"witness {body.witness} cosigned before with another key",
            ),
        )
    if not cosignature_ok(public_key_from_raw(raw_key), body.witness, body.cosigned_at, cp, sig):
        raise HTTPException(
            422,
            Said(
                "副署签名与这个检查点验证不符",
                "the cosignature does not verify against this checkpoint",
            ),
        )
    await conn.execute(
        q["audit_insert_cosignature"], tree_size, body.witness, raw_key, body.cosigned_at, sig
    )
    return (await _with_cosignatures(conn, q, [cp]))[0]


@router.post(
    "/checkpoints/{tree_size}/cosignatures/c2sp",
    status_code=201,
    summary="Hand in a C2SP tlog-cosignature/v1 (Ed25519) of a checkpoint",
)
async def add_c2sp_cosignature(
    conn: Conn,
    q: Q,
    who: Auditor,
    body: C2spCosignatureIn,
    tree_size: Annotated[int, Path(ge=0, le=MAX_SIZE)],
) -> dict[str, Any]:
    """What an existing transparency-log witness returns for the C2SP note of this
    checkpoint (GET ...?format=c2sp), with its public key; kept and served in both forms."""
    cp = await _checkpoint(conn, q, tree_size)
    raw_key = _b64(body.public_key, 32, "public_key")
    try:
        cos = c2sp.verify_cosignature(raw_key, body.line, cp)
    except ValueError as exc:
        raise HTTPException(
            422,
            Said(
                f"不是检查点 {tree_size} 的有效 cosignature/v1：{exc}",
                f"not a valid cosignature/v1 of checkpoint {tree_size}: {exc}",
            ),
        ) from None
    known = await conn.fetchval(q["audit_witness_key"], cos.name)
    if known is not None and bytes(known) != raw_key:
        raise Refusal(
            "witness_key_changed",
            Said(
                f"见证方 {cos.name} 之前用另一把密钥副署过",
                f"witness {cos.name} cosigned before with another key",
            ),
        )
    await conn.execute(
        q["audit_insert_cosignature"],
        tree_size,
        cos.name,
        raw_key,
        f"{C2SP_PREFIX}{cos.timestamp}",
        cos.signature,
    )
    return (await _with_cosignatures(conn, q, [cp]))[0]


@router.get("/consistency", summary="Consistency proof between two tree sizes (RFC 9162 §2.1.4)")
async def consistency(
    conn: Conn,
    q: Q,
    who: Auditor,
    first: Annotated[int, Query(ge=0, le=MAX_SIZE)],
    second: Annotated[int, Query(ge=0, le=MAX_SIZE)],
) -> dict[str, Any]:
    if first > second:
        raise HTTPException(
            422,
            Said(
                f"first（{first}）不能大于 second（{second}）",
                f"first ({first}) must not exceed second ({second})",
            ),
        )
    size = await conn.fetchval(q["audit_tree_size"])
    if second > size:
        raise NotFound(
            Said(
                f"树有 {size} 个叶子，不是 {second} 个", f"the tree has {size} leaves, not {second}"
            )
        )
    path = await store.consistency(conn, q, first, second)
    return {"first": first, "second": second, "proof": [h.hex() for h in path]}


@router.get("/entries/{entry_id}/inclusion", summary="Inclusion proof of an entry")
async def inclusion(
    conn: Conn,
    q: Q,
    who: Auditor,
    entry_id: Annotated[int, Path(ge=1, le=MAX_SIZE)],
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_SIZE, description="Default: the latest checkpoint.")
    ] = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(q["audit_entry_position"], entry_id)
    if row is None or row["org_id"] != who.org:
        raise NotFound(
            Said(
                f"树中没有组织 {who.org} 的条目 {entry_id}",
                f"no entry {entry_id} of organisation {who.org} in the tree",
            )
        )
    cp = await _checkpoint(conn, q, tree_size)
    if row["position"] >= cp.tree_size:
        raise Refusal(
            "not_yet_checkpointed",
            Said(
                f"条目 {entry_id} 位于 {row['position']}，在检查点 {cp.tree_size} 之后；"
                "请索取更新的检查点",
                f"entry {entry_id} is at position {row['position']}, after checkpoint "
                f"{cp.tree_size}; ask for a newer checkpoint",
            ),
        )
    entry_rows = await conn.fetch(q["audit_export_range"], row["position"], row["position"] + 1)
    path = await store.inclusion(conn, q, row["position"], cp.tree_size)
    return {
        "entry": entry_from_row(entry_rows[0]),
        "position": row["position"],
        "leaf_hash": bytes(entry_rows[0]["leaf_hash"]).hex(),
        "checkpoint": cp.to_json(),
        "proof": [h.hex() for h in path],
    }


@router.get(
    "/accounts/{account_id}/history",
    response_model=Page[dict[str, Any]],
    summary="Your organisation's entries of an account, oldest first, with tree positions",
)
async def account_history(
    conn: Conn,
    q: Q,
    who: Auditor,
    paging: Paging,
    account_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")],
) -> Page[dict[str, Any]]:
    """The (auditor's organisation, account) chain only: the same person's entries in other
    organisations are other accounts and are not listed (in the export they are leaf
    hashes). An account with no entry of the auditor's organisation is 404."""
    if not await conn.fetchval(q["audit_account_in_org"], account_id, who.org):
        raise no_account(account_id, who.org)
    (after,) = paging.after(int)
    rows = await conn.fetch(
        q["audit_account_history"], account_id, min(after or 0, INT4_MAX), paging.fetch, who.org
    )
    return paging.page(
        rows,
        lambda r: (r["account_seq"],),
        lambda r: {
            "position": r["position"],
            "leaf_hash": bytes(r["leaf_hash"]).hex() if r["leaf_hash"] is not None else None,
            "entry": entry_from_row(r),
        },
    )


@router.get(
    "/export",
    summary="Stream the tree's entries as NDJSON (a header line, then one line per position)",
    response_class=StreamingResponse,
)
async def export(
    request: Request,
    q: Q,
    who: Auditor,
    tree_size: Annotated[
        int | None, Query(ge=0, le=MAX_SIZE, description="Checkpoint; default the latest.")
    ] = None,
    start: Annotated[int, Query(ge=0, le=MAX_SIZE)] = 0,
    end: Annotated[int | None, Query(ge=0, le=MAX_SIZE, description="Default: tree_size.")] = None,
) -> StreamingResponse:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        cp = await _checkpoint(conn, q, tree_size)
        cutover = await conn.fetchval(q["audit_cutover"])
    stop = cp.tree_size if end is None else end
    if not start <= stop <= cp.tree_size:
        raise HTTPException(
            422,
            Said(
                f"范围 [{start}, {stop}) 不在检查点大小 {cp.tree_size} 之内",
                f"range [{start}, {stop}) is not inside checkpoint size {cp.tree_size}",
            ),
        )
    header = {
        "format": EXPORT_FORMAT,
        "org_id": who.org,
        "start": start,
        "end": stop,
        "checkpoint": cp.to_json(),
        # entries with entry_id <= this were chained per account_id (before migration 0011),
        # later ones per (org_id, account_id); 0 when the ledger began under the new rule
        "legacy_cutover": cutover if cutover is not None else 0,
        "hash_fields": list(CANONICAL_FIELDS),
        "leaf_fields": list(LEAF_FIELDS),
    }

    async def lines() -> AsyncIterator[bytes]:
        yield orjson.dumps(header) + b"\n"
        async with pool.acquire() as conn:
            buf: list[bytes] = []
            async for rec in store.export_rows(conn, q, start, stop, who.org):
                buf.append(orjson.dumps(rec))
                if len(buf) >= 1000:
                    yield b"\n".join(buf) + b"\n"
                    buf = []
            if buf:
                yield b"\n".join(buf) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
