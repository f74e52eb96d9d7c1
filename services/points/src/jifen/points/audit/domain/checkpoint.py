"""Signed checkpoints (tree heads) and witness cosignatures: what is signed, and checking it.

A checkpoint says "the ledger's tree had ``tree_size`` leaves with root ``root_hash`` at
``issued_at``", signed with the operator's Ed25519 key ``key_id``. A witness (a union)
cosigns a checkpoint only after checking it is consistent with the last one it cosigned;
the cosignature covers the whole checkpoint body, so one signed history can never be shown
to two parties in two versions without one of them noticing.

Signed bytes are plain text lines (UTF-8, each ending in ``\\n``), easy to rebuild anywhere.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINT_FORMAT = "jifen.points.checkpoint.v1"
COSIGNATURE_FORMAT = "jifen.points.cosignature.v1"
ORIGIN = "jifen/points/ledger"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root_hash: bytes
    issued_at: str  # RFC 3339 UTC
    key_id: str
    signature: bytes = b""
    origin: str = ORIGIN

    def body(self) -> bytes:
        return (
            f"{CHECKPOINT_FORMAT}\n{self.origin}\n{self.tree_size}\n{self.root_hash.hex()}\n"
            f"{self.issued_at}\n{self.key_id}\n"
        ).encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "issued_at": self.issued_at,
            "key_id": self.key_id,
            "signature": b64(self.signature),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Checkpoint:
        return cls(
            tree_size=int(d["tree_size"]),
            root_hash=bytes.fromhex(d["root_hash"]),
            issued_at=str(d["issued_at"]),
            key_id=str(d["key_id"]),
            signature=unb64(d["signature"]),
            origin=str(d.get("origin", ORIGIN)),
        )


def sign_checkpoint(key: Ed25519PrivateKey, unsigned: Checkpoint) -> Checkpoint:
    return Checkpoint(
        unsigned.tree_size,
        unsigned.root_hash,
        unsigned.issued_at,
        unsigned.key_id,
        key.sign(unsigned.body()),
        unsigned.origin,
    )


def checkpoint_signature_ok(cp: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """None when the signature holds; otherwise why not."""
    key = keys.get(cp.key_id)
    if key is None:
        return f"signed with unknown key {cp.key_id!r}"
    try:
        key.verify(cp.signature, cp.body())
    except InvalidSignature:
        return f"signature does not verify with key {cp.key_id!r}"
    return None


def cosignature_body(witness: str, cosigned_at: str, cp: Checkpoint) -> bytes:
    return f"{COSIGNATURE_FORMAT}\n{witness}\n{cosigned_at}\n".encode() + cp.body()


def cosign(key: Ed25519PrivateKey, witness: str, cosigned_at: str, cp: Checkpoint) -> bytes:
    return key.sign(cosignature_body(witness, cosigned_at, cp))


def cosignature_ok(
    public_key: Ed25519PublicKey, witness: str, cosigned_at: str, cp: Checkpoint, sig: bytes
) -> bool:
    try:
        public_key.verify(sig, cosignature_body(witness, cosigned_at, cp))
    except InvalidSignature:
        return False
    return True


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)
