"""The auditor's page checks what the points API gives it, as any auditor's tool would, instead
of taking the service's word: a checkpoint's Ed25519 signature against the public keys the API
publishes (``GET /v1/audit/keys``), and the RFC 9162 consistency proof between the previous
checkpoint and the latest (``GET /v1/audit/consistency``), which says the latest tree is an
append-only extension of the previous one.

The portal imports no service (the import contracts): the bytes signed are rebuilt here from
the format the ledger documents (schemas/ledger/README.md), and the proof is verified with the
RFC's own algorithm (§2.1.4.2)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CHECKPOINT_FORMAT = "jifen.points.checkpoint.v1"


def checkpoint_body(cp: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers, from its JSON."""
    return (
        f"{CHECKPOINT_FORMAT}\n{cp['origin']}\n{int(cp['tree_size'])}\n{cp['root_hash']}\n"
        f"{cp['issued_at']}\n{cp['key_id']}\n"
    ).encode()


def signature_ok(cp: dict[str, Any], keys: dict[str, str]) -> bool:
    """Does the checkpoint's signature verify with the published key it names (``keys``: key
    id -> raw Ed25519 public key, base64)?"""
    raw = keys.get(str(cp.get("key_id")))
    if raw is None:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(raw, validate=True))
        key.verify(base64.b64decode(cp["signature"], validate=True), checkpoint_body(cp))
    except (InvalidSignature, ValueError, binascii.Error, KeyError):
        return False
    return True


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def consistent(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of ``second`` leaves an append-only extension of the tree
    of ``first`` leaves, by the proof?"""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


@dataclass(frozen=True)
class CheckpointCheck:
    """What the auditor's page says of the latest checkpoint."""

    latest: dict[str, Any] | None
    previous: dict[str, Any] | None
    signed_ok: bool | None  # None: no checkpoint yet
    consistent_ok: bool | None  # None: nothing before it to compare with


def check(
    latest: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    keys: dict[str, str],
    proof: Sequence[str] | None,
) -> CheckpointCheck:
    if latest is None:
        return CheckpointCheck(None, None, None, None)
    signed = signature_ok(latest, keys)
    if previous is None or proof is None:
        return CheckpointCheck(latest, previous, signed, None)
    try:
        hashes = [bytes.fromhex(h) for h in proof]
        ok = signature_ok(previous, keys) and consistent(
            int(previous["tree_size"]),
            int(latest["tree_size"]),
            bytes.fromhex(previous["root_hash"]),
            bytes.fromhex(latest["root_hash"]),
            hashes,
        )
    except (ValueError, KeyError):
        ok = False
    return CheckpointCheck(latest, previous, signed, ok)
