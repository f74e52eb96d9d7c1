"""What `jifen audit verify` does on the union's machine: read the export file(s), the
checkpoints the union kept and the operator's public keys, feed the pure verifier, and keep
what a clean run proved (the checkpoint and the leaf hashes) for the next run.

Files (docs/AUDIT.md): an export is the NDJSON the audit API streams; ``--keys`` is the JSON
list ``GET /v1/audit/keys`` returns (or a folder of ``<key id>.pem`` public keys);
``--checkpoints`` a folder of checkpoint JSON files; ``--state`` a folder this writes
``leaves.bin`` (32 bytes per position) and ``verified.json`` (the checkpoint and the
legacy cutover, which must never move once seen) to after a clean run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.checkpoint import Checkpoint, public_key_from_raw, unb64
from jifen.points.audit.domain.verify import Result, Verifier


def load_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    if path.is_dir():
        keys: dict[str, Ed25519PublicKey] = {}
        for p in sorted(path.glob("*.pem")):
            k = serialization.load_pem_public_key(p.read_bytes())
            if isinstance(k, Ed25519PublicKey):
                keys[p.stem] = k
        return keys
    return {
        k["key_id"]: public_key_from_raw(unb64(k["public_key"]))
        for k in json.loads(path.read_text())
    }


def load_checkpoints(folder: Path | None) -> list[Checkpoint]:
    if folder is None or not folder.exists():
        return []
    return [Checkpoint.from_json(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def save_checkpoint(folder: Path, cp: Checkpoint) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint-{cp.tree_size:012d}.json"
    path.write_text(json.dumps(cp.to_json(), indent=2) + "\n")
    return path


def verify_files(
    exports: list[Path],
    keys: dict[str, Ed25519PublicKey],
    checkpoints: Path | None = None,
    state: Path | None = None,
    on_progress: Callable[[int], Any] | None = None,
) -> Result:
    """Verify; after a clean run keep the checkpoint (in ``checkpoints``) and the leaves."""
    previous = b""
    previous_cutover: int | None = None
    if state is not None and (state / "leaves.bin").exists():
        previous = (state / "leaves.bin").read_bytes()
    if state is not None and (state / "verified.json").exists():
        previous_cutover = json.loads((state / "verified.json").read_text()).get("legacy_cutover")
    v = Verifier(keys, load_checkpoints(checkpoints), previous, previous_cutover)
    loads = orjson.loads
    first = True
    for path in exports:
        with path.open("rb") as f:
            header = loads(f.readline())
            if first:
                v.feed_header(header)
                first = False
            while True:
                chunk = f.readlines(4_000_000)  # ~4 MB at a time: memory flat, progress shown
                if not chunk:
                    break
                v.feed_many(loads(line) for line in chunk if line.strip())
                if on_progress is not None:
                    on_progress(sum(map(len, chunk)))
    result = v.finish()
    if result.ok and result.checkpoint is not None:
        if checkpoints is not None:
            save_checkpoint(checkpoints, result.checkpoint)
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
            (state / "leaves.bin").write_bytes(result.leaves[: 32 * result.checkpoint.tree_size])
            verified = {**result.checkpoint.to_json(), "legacy_cutover": result.legacy_cutover}
            (state / "verified.json").write_text(json.dumps(verified, indent=2) + "\n")
    return result
