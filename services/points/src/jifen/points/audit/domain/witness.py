"""A witness's rule: cosign a new checkpoint only if it is validly signed and provably an
append-only extension of the last checkpoint this witness cosigned."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.checkpoint import Checkpoint, checkpoint_signature_ok
from jifen.points.audit.domain.merkle import verify_consistency


def refusal(
    previous: Checkpoint | None,
    new: Checkpoint,
    proof: Sequence[bytes],
    keys: dict[str, Ed25519PublicKey],
) -> str | None:
    """None if ``new`` may be cosigned; otherwise the reason to refuse."""
    why = checkpoint_signature_ok(new, keys)
    if why:
        return f"checkpoint of size {new.tree_size}: {why}"
    if previous is None:
        return None
    if new.tree_size < previous.tree_size:
        return (
            f"checkpoint of size {new.tree_size} is smaller than the {previous.tree_size} "
            "you cosigned: the ledger was cut or rolled back"
        )
    if not verify_consistency(
        previous.tree_size, new.tree_size, previous.root_hash, new.root_hash, proof
    ):
        return (
            f"checkpoint of size {new.tree_size} (root {new.root_hash.hex()[:16]}…) is NOT "
            f"consistent with the one of size {previous.tree_size} you cosigned on "
            f"{previous.issued_at} (root {previous.root_hash.hex()[:16]}…): history was "
            "rewritten; refusing to cosign"
        )
    return None
