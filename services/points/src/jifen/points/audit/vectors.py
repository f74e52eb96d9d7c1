"""Builds schemas/ledger/vectors.json, the test vectors a union checks its own verifier
against (``python -m jifen.points.audit.vectors > schemas/ledger/vectors.json``); a unit test
holds the committed file equal to what this code computes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jifen.points.audit.domain import c2sp
from jifen.points.audit.domain.canonical import hash_bytes, leaf_bytes, recompute_entry_hash
from jifen.points.audit.domain.checkpoint import (
    Checkpoint,
    b64,
    cosign,
    cosignature_body,
    raw_public_key,
    sign_checkpoint,
)
from jifen.points.audit.domain.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    mth,
)
from jifen.points.domain.chain import GENESIS

# the leaf inputs of Certificate Transparency's own Merkle tests
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
CT_LEAVES.append("606162636465666768696a6b6c6d6e6f")
# published test-only keys: deterministic seeds, never used for anything real
OPERATOR_SEED = bytes(range(32))
WITNESS_SEED = bytes(range(32, 64))


def _getter(leaves: list[bytes]) -> Any:
    nodes: dict[tuple[int, int], bytes] = {}
    f = Frontier()
    for h in leaves:
        for level, index, node in f.append(h):
            nodes[(level, index)] = node
    return lambda level, index: nodes[(level, index)]


def _entries() -> list[dict[str, Any]]:
    base = {
        "account_id": "vol-0001",
        "org_id": "jiangmen-riders",
        "category": "meal_delivery",
        "job_id": "6f1c2c55-0b8e-4a43-9d7e-2f4b8a1d9c01",
        "redemption_id": None,
        "cause_type": "jifen.tasks.completion.verified.v1",
    }
    specs = [
        (
            1,
            "credit",
            40,
            "a3a4c3a2-6f0e-4b59-8a51-3c6c1d0e7a11",
            "0d9f6f8e-1b5c-4a2e-9d3f-5e2a1b7c8d01",
        ),
        (
            2,
            "credit",
            25,
            "b1c2d3e4-5f60-4a1b-8c2d-3e4f5a6b7c22",
            "0d9f6f8e-1b5c-4a2e-9d3f-5e2a1b7c8d02",
        ),
        (
            3,
            "reversal",
            -25,
            "c4d5e6f7-0819-4a2b-9c3d-4e5f6a7b8c33",
            "0d9f6f8e-1b5c-4a2e-9d3f-5e2a1b7c8d02",
        ),
    ]
    out: list[dict[str, Any]] = []
    prev, balance = GENESIS, 0
    for seq, kind, amount, cause, completion in specs:
        balance += amount
        e = {
            **base,
            "entry_id": 100 + seq,
            "account_seq": seq,
            "kind": kind,
            "amount": amount,
            "balance_after": balance,
            "cause_event_id": cause,
            "completion_id": completion,
            "occurred_at": f"2026-11-0{seq}T08:30:00.000000Z",
            "recorded_at": f"2026-11-0{seq}T08:30:00.250000Z",
            "prev_hash": prev,
        }
        if kind == "reversal":
            e["cause_type"] = "jifen.tasks.completion.revoked.v1"
        prev = recompute_entry_hash(e)
        e["entry_hash"] = prev
        out.append(e)
    return out


def build_vectors() -> dict[str, Any]:
    leaves = [leaf_hash(bytes.fromhex(d)) for d in CT_LEAVES]
    get = _getter(leaves)
    trees = []
    for n in range(1, len(leaves) + 1):
        trees.append(
            {
                "tree_size": n,
                "root": mth(leaves[:n]).hex(),
                "inclusion": [
                    {"index": m, "proof": [h.hex() for h in inclusion_proof(m, n, get)]}
                    for m in range(n)
                ],
                "consistency": [
                    {"first": m, "proof": [h.hex() for h in consistency_proof(m, n, get)]}
                    for m in range(1, n)
                ],
            }
        )
    entries = _entries()
    entry_leaves = [leaf_hash(leaf_bytes(e)) for e in entries]
    op = Ed25519PrivateKey.from_private_bytes(OPERATOR_SEED)
    wit = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED)
    cp = sign_checkpoint(
        op, Checkpoint(len(entries), mth(entry_leaves), "2026-11-03T09:00:00.000000Z", "test-key")
    )
    at = "2026-11-03T09:05:00.000000Z"
    return {
        "about": "Test vectors for Jifen's ledger audit encoding (schemas/ledger/README.md). "
        "Keys here are published test keys: never trust them for anything real.",
        "merkle": {
            "leaf_inputs_hex": CT_LEAVES,
            "leaf_hashes": [h.hex() for h in leaves],
            "empty_root": hashlib.sha256(b"").hexdigest(),
            "trees": trees,
        },
        "entries": [
            {
                "entry": e,
                "hash_input": hash_bytes(e).decode(),
                "entry_hash": e["entry_hash"],
                "leaf_input": leaf_bytes(e).decode(),
                "leaf_hash": h.hex(),
            }
            for e, h in zip(entries, entry_leaves, strict=True)
        ],
        "checkpoint": {
            "operator_private_seed_hex": OPERATOR_SEED.hex(),
            "operator_public_key": b64(raw_public_key(op.public_key())),
            "checkpoint": cp.to_json(),
            "signed_text": cp.body().decode(),
            "cosignature": {
                "witness": "riders-union-jiangmen",
                "witness_private_seed_hex": WITNESS_SEED.hex(),
                "witness_public_key": b64(raw_public_key(wit.public_key())),
                "cosigned_at": at,
                "signed_text": cosignature_body("riders-union-jiangmen", at, cp).decode(),
                "signature": b64(cosign(wit, "riders-union-jiangmen", at, cp)),
            },
        },
    }


C2SP_WITNESS = "witness.riders-union.example/jiangmen"
C2SP_TIMESTAMP = 1793955900  # 2026-11-06T09:05:00Z


def build_c2sp_vectors() -> dict[str, Any]:
    """schemas/ledger/c2sp-vectors.json: the checkpoint of vectors.json as a C2SP
    tlog-checkpoint signed note, and a tlog-cosignature/v1 of it (``python -m
    jifen.points.audit.vectors c2sp``)."""
    v = build_vectors()
    cp = Checkpoint.from_json(v["checkpoint"]["checkpoint"])
    op = Ed25519PrivateKey.from_private_bytes(OPERATOR_SEED)
    wit = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED)
    op_raw, wit_raw = raw_public_key(op.public_key()), raw_public_key(wit.public_key())
    log_line = c2sp.sign_checkpoint_note(op, cp)
    cos_line = c2sp.cosign(wit, C2SP_WITNESS, C2SP_TIMESTAMP, cp)
    name, raw = c2sp.parse_signature_line(cos_line)
    bad_time = c2sp.signature_line(
        name, raw[:4], (C2SP_TIMESTAMP + 1).to_bytes(8, "big") + raw[12:]
    )
    wrong_kid = c2sp.signature_line(name, c2sp.key_id(name, c2sp.ED25519, wit_raw), raw[4:])
    return {
        "about": "Jifen checkpoints in C2SP form (c2sp.org/signed-note, tlog-checkpoint, "
        "tlog-cosignature cosignature/v1 Ed25519). The checkpoint is the one of vectors.json; "
        "keys are published test keys: never trust them for anything real.",
        "log": {
            "key_name": cp.origin,
            "private_seed_hex": OPERATOR_SEED.hex(),
            "public_key": b64(op_raw),
            "key_id_hex": c2sp.key_id(cp.origin, c2sp.ED25519, op_raw).hex(),
            "vkey": c2sp.vkey(cp.origin, op.public_key()),
        },
        "checkpoint": {
            "tree_size": cp.tree_size,
            "root_hash_hex": cp.root_hash.hex(),
            "note_text": c2sp.checkpoint_text(cp).decode(),
            "log_signature_line": log_line,
            "note": c2sp.note(cp, [log_line]),
        },
        "cosignature": {
            "key_name": C2SP_WITNESS,
            "private_seed_hex": WITNESS_SEED.hex(),
            "public_key": b64(wit_raw),
            "key_id_hex": c2sp.key_id(C2SP_WITNESS, c2sp.COSIGNATURE_V1, wit_raw).hex(),
            "timestamp": C2SP_TIMESTAMP,
            "signed_message": c2sp.cosignature_message(C2SP_TIMESTAMP, cp).decode(),
            "signature_line": cos_line,
            "note_with_cosignature": c2sp.note(cp, [log_line, cos_line]),
        },
        "must_not_verify": [
            {"why": "timestamp changed after signing", "signature_line": bad_time},
            {"why": "key ID of type 0x01, not 0x04", "signature_line": wrong_kid},
        ],
    }


if __name__ == "__main__":
    import sys

    build = build_c2sp_vectors if sys.argv[1:] == ["c2sp"] else build_vectors
    print(json.dumps(build(), indent=2, ensure_ascii=False))
