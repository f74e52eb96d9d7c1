"""What `jifen audit verify` does on the union's machine: read the export file(s), the
checkpoints the union kept and the operator's public keys, feed the pure verifier, and keep
what a clean run proved (the checkpoint and the leaf hashes) for the next run.

Files (docs/AUDIT.md): an export is the NDJSON the audit API streams; ``--keys`` is the JSON
list ``GET /v1/audit/keys`` returns (or a folder of ``<key id>.pem`` public keys);
``--checkpoints`` a folder of checkpoint JSON files; ``--state`` a folder this writes
``leaves.bin`` (32 bytes per position) and ``verified.json`` to after a clean run.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.checkpoint import Checkpoint, public_key_from_raw, unb64
from jifen.points.audit.domain.verify import (
    ChunkSummary,
    Result,
    Verifier,
    export_lines,
    summarize_block,
)


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


# Blocks of about this many bytes go to a worker at a time (memory stays flat).
CHUNK_BYTES = 2_000_000


def _blocks(exports: list[Path], v: Verifier) -> Iterator[bytes]:
    """The export after each file's header (the first file's header is fed to ``v``), in
    blocks of whole lines of about ``CHUNK_BYTES``."""
    first = True
    for path in exports:
        with path.open("rb") as f:
            header = orjson.loads(f.readline())
            if first:
                v.feed_header(header)
                first = False
            rest = b""
            while data := f.read(CHUNK_BYTES):
                if rest:
                    data = rest + data
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield data[:cut] if rest else data
            if rest:
                yield rest


@dataclass(slots=True)
class _Pending:
    block: bytes
    future: Future[ChunkSummary | None]
    summary: ChunkSummary | None = None
    done_here: bool = False


def _feed_pooled(
    blocks: Iterator[bytes],
    v: Verifier,
    jobs: int,
    on_progress: Callable[[int], Any] | None,
) -> None:
    """Workers verify chunks on their own (``summarize_block``: every leaf and entry hash
    recomputed from the content, each account's chain, balances and rules within the chunk)
    while this process joins them in order (``Verifier.merge``: each chunk continues every
    account exactly where the previous ones left it). A chunk that shows anything unusual,
    or does not fit, is replayed here record by record (``feed_many``), which writes the
    findings. When the workers fall behind (a loaded machine), this process verifies the
    newest chunk none of them has started rather than wait. At most ``2 · jobs + 2`` chunks
    are in flight, so memory stays flat."""
    loads = orjson.loads
    depth = 2 * jobs + 2
    pending: deque[_Pending] = deque()

    def steal() -> bool:
        for p in reversed(pending):
            if not p.done_here and p.future.cancel():
                p.summary = summarize_block(p.block)
                p.done_here = True
                return True
        return False

    def feed_oldest() -> None:
        p = pending[0]
        while not p.done_here and not p.future.done() and steal():
            pass
        summary = p.summary if p.done_here else p.future.result()
        pending.popleft()
        if summary is None or not v.merge(summary):
            v.feed_many([loads(line) for line in export_lines(p.block)])
        if on_progress is not None:
            on_progress(len(p.block))

    # fork: the workers need nothing but this module's code, already loaded (a spawned
    # interpreter would re-import the whole CLI first); they touch no lock of this process
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"))
    try:
        for block in blocks:
            pending.append(_Pending(block, pool.submit(summarize_block, block)))
            while len(pending) > depth:
                feed_oldest()
        while pending:
            feed_oldest()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def verify_files(
    exports: list[Path],
    keys: dict[str, Ed25519PublicKey],
    checkpoints: Path | None = None,
    state: Path | None = None,
    on_progress: Callable[[int], Any] | None = None,
    jobs: int = 0,
) -> Result:
    """Verify; after a clean run keep the checkpoint (in ``checkpoints``) and the leaves.

    ``jobs``: processes verifying chunks besides this one (``_feed_pooled``); 0, the default,
    verifies record by record here. The result is the same."""
    previous = b""
    if state is not None and (state / "leaves.bin").exists():
        previous = (state / "leaves.bin").read_bytes()
    v = Verifier(keys, load_checkpoints(checkpoints), previous)
    if jobs > 0:
        _feed_pooled(_blocks(exports, v), v, jobs, on_progress)
    else:
        loads = orjson.loads
        first = True
        for path in exports:
            with path.open("rb") as f:
                header = loads(f.readline())
                if first:
                    v.feed_header(header)
                    first = False
                while True:
                    chunk = f.readlines(4_000_000)  # ~4 MB at a time: memory flat, progress
                    if not chunk:
                        break
                    # one record at a time: parsed, checked and freed (cache-friendly)
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
            (state / "verified.json").write_text(
                json.dumps(result.checkpoint.to_json(), indent=2) + "\n"
            )
    return result
