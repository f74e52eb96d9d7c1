"""The auditor's page verifies checkpoints itself (jifen.portal.ledger, which may import no
service): held here against the points service's own Merkle tree, proofs and signing key, so
the portal's copy of the RFC 9162 verifier and of the signed bytes cannot drift from them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jifen.portal.ledger import check, consistent, signature_ok

from jifen.points.audit.domain.checkpoint import Checkpoint, raw_public_key, sign_checkpoint
from jifen.points.audit.domain.merkle import consistency_proof, mth

LEAVES = [hashlib.sha256(b"\x00" + f"entry {i}".encode()).digest() for i in range(40)]


def _get(level: int, index: int) -> bytes:
    size = 1 << level
    return mth(LEAVES[index * size : (index + 1) * size])


@pytest.mark.parametrize(
    ("first", "second"), [(0, 5), (1, 1), (1, 2), (3, 7), (4, 8), (5, 40), (16, 33), (39, 40)]
)
def test_a_true_proof_is_consistent_and_a_changed_one_is_not(first: int, second: int) -> None:
    old, new = mth(LEAVES[:first]), mth(LEAVES[:second])
    proof = consistency_proof(first, second, _get)
    assert consistent(first, second, old, new, proof)
    if first and first != second:
        assert not consistent(first, second, old, hashlib.sha256(b"other").digest(), proof)
        # a history rewritten before the old size: the old root no longer matches
        forged = mth([hashlib.sha256(b"forged").digest(), *LEAVES[1:first]])
        assert not consistent(first, second, forged, new, proof)
        if proof:
            assert not consistent(first, second, old, new, proof[:-1])


def _signed(size: int, key: Ed25519PrivateKey) -> dict[str, object]:
    cp = sign_checkpoint(key, Checkpoint(size, mth(LEAVES[:size]), "2026-12-02T23:00:00Z", "key-1"))
    return cp.to_json()


def test_a_checkpoint_signed_by_the_service_key_verifies_and_a_changed_one_does_not() -> None:
    key = Ed25519PrivateKey.generate()
    keys = {"key-1": base64.b64encode(raw_public_key(key.public_key())).decode()}
    latest, previous = _signed(12, key), _signed(7, key)
    assert signature_ok(latest, keys)
    assert not signature_ok({**latest, "tree_size": 13}, keys)
    assert not signature_ok(latest, {"key-2": keys["key-1"]})
    other = base64.b64encode(raw_public_key(Ed25519PrivateKey.generate().public_key())).decode()
    assert not signature_ok(latest, {"key-1": other})

    proof = [h.hex() for h in consistency_proof(7, 12, _get)]
    seen = check(latest, previous, keys, proof)
    assert seen.signed_ok and seen.consistent_ok
    assert check(latest, None, keys, None).consistent_ok is None
    assert check(None, None, keys, None).signed_ok is None
    assert check(latest, previous, keys, proof[1:]).consistent_ok is False
