"""schemas/ledger/vectors.json is what the code computes, and says what the README says."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.kernel.settings import REPO_ROOT
from jifen.points.audit.domain.merkle import verify_consistency, verify_inclusion
from jifen.points.audit.vectors import build_vectors

VECTORS = REPO_ROOT / "schemas" / "ledger" / "vectors.json"


def test_committed_vectors_match_the_code() -> None:
    assert json.loads(VECTORS.read_text()) == build_vectors()


def test_vectors_check_out_with_nothing_but_sha256_and_ed25519() -> None:
    """What a union's own verifier in another language would do with the file."""
    v = json.loads(VECTORS.read_text())
    leaves = [bytes.fromhex(h) for h in v["merkle"]["leaf_hashes"]]
    for data, h in zip(v["merkle"]["leaf_inputs_hex"], leaves, strict=True):
        assert hashlib.sha256(b"\x00" + bytes.fromhex(data)).digest() == h
    for t in v["merkle"]["trees"]:
        n, root = t["tree_size"], bytes.fromhex(t["root"])
        for p in t["inclusion"]:
            proof = [bytes.fromhex(x) for x in p["proof"]]
            assert verify_inclusion(p["index"], n, leaves[p["index"]], proof, root)
        for p in t["consistency"]:
            first_root = bytes.fromhex(v["merkle"]["trees"][p["first"] - 1]["root"])
            proof = [bytes.fromhex(x) for x in p["proof"]]
            assert verify_consistency(p["first"], n, first_root, root, proof)
    prev = "0" * 64
    for e in v["entries"]:
        assert hashlib.sha256(e["hash_input"].encode()).hexdigest() == e["entry_hash"]
        assert json.loads(e["hash_input"])["prev_hash"] == prev
        assert hashlib.sha256(b"\x00" + e["leaf_input"].encode()).hexdigest() == e["leaf_hash"]
        assert e["hash_input"] == json.dumps(
            {k: e["entry"][k] for k in json.loads(e["hash_input"])},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        prev = e["entry_hash"]
    c = v["checkpoint"]
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(c["operator_public_key"]))
    cp = c["checkpoint"]
    assert c["signed_text"].splitlines() == [
        "jifen.points.checkpoint.v1",
        cp["origin"],
        str(cp["tree_size"]),
        cp["root_hash"],
        cp["issued_at"],
        cp["key_id"],
    ]
    pub.verify(base64.b64decode(cp["signature"]), c["signed_text"].encode())
    w = c["cosignature"]
    wpub = Ed25519PublicKey.from_public_bytes(base64.b64decode(w["witness_public_key"]))
    assert w["signed_text"].endswith(c["signed_text"])
    wpub.verify(base64.b64decode(w["signature"]), w["signed_text"].encode())
