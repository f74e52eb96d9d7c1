"""`jifen audit witness`: a union's own check-and-countersign step (runs on the union's side)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jifen.kernel.contracts import isoformat
from jifen.points.audit.client import pages, refused
from jifen.points.audit.domain.checkpoint import (
    Checkpoint,
    b64,
    cosign,
    public_key_from_raw,
    raw_public_key,
    unb64,
)
from jifen.points.audit.domain.witness import refusal
from jifen.points.audit.keys import generate_private_key, load_private_key
from jifen.points.audit.offline import load_keys


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    checkpoint: Checkpoint | None = None


def _raise(r: httpx.Response) -> None:
    if r.status_code >= 400:
        raise refused(r, f"{r.request.method} {r.request.url.path}")


def _load(key_path: Path, state: Path) -> tuple[Ed25519PrivateKey, Checkpoint | None]:
    key = load_private_key(key_path) if key_path.exists() else generate_private_key(key_path)
    last = state / "cosigned.json"
    return key, Checkpoint.from_json(json.loads(last.read_text())) if last.exists() else None


def _save(state: Path, cp: Checkpoint) -> None:
    """Only after the service accepted the cosignature: the next run checks against it."""
    state.mkdir(parents=True, exist_ok=True)
    tmp = state / "cosigned.json.tmp"
    tmp.write_text(json.dumps(cp.to_json(), indent=2) + "\n")
    tmp.replace(state / "cosigned.json")


async def run_witness(
    url: str,
    token: str,
    name: str,
    key_path: Path,
    state: Path,
    keys_path: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Verdict:
    key, previous = _load(key_path, state)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        transport=transport,
        timeout=60,
    ) as http:
        if keys_path is not None:
            keys = load_keys(keys_path)
        else:
            keys = {
                k["key_id"]: public_key_from_raw(unb64(k["public_key"]))
                async for k in pages(http, "/v1/audit/keys")
            }
        r = await http.get("/v1/audit/checkpoints/latest")
        if r.status_code == 404:
            return Verdict(False, "nothing to cosign: the service has signed no checkpoint yet")
        _raise(r)
        new = Checkpoint.from_json(r.json())
        proof: list[bytes] = []
        if previous is not None and previous.tree_size <= new.tree_size:
            r = await http.get(
                "/v1/audit/consistency",
                params={"first": previous.tree_size, "second": new.tree_size},
            )
            _raise(r)
            proof = [bytes.fromhex(h) for h in r.json()["proof"]]
        why = refusal(previous, new, proof, keys)
        if why is not None:
            return Verdict(False, f"REFUSED: {why}", new)
        at = isoformat(datetime.now(UTC))
        r = await http.post(
            f"/v1/audit/checkpoints/{new.tree_size}/cosignatures",
            json={
                "witness": name,
                "public_key": b64(raw_public_key(key.public_key())),
                "cosigned_at": at,
                "signature": b64(cosign(key, name, at, new)),
            },
        )
        if r.status_code in (409, 422):
            return Verdict(False, f"the service rejected the cosignature: {r.json()['detail']}")
        _raise(r)
    _save(state, new)
    since = f" (consistent with {previous.tree_size})" if previous else " (first cosignature)"
    return Verdict(True, f"cosigned checkpoint {new.tree_size}{since}", new)
