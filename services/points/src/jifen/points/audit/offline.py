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

import gc
import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.checkpoint import Checkpoint, public_key_from_raw, unb64
from jifen.points.audit.domain.verify import EXPORT_FORMAT, Result, Verifier

# below this much export per process the work is not split: forking and joining would cost more
PARALLEL_MIN_CHUNK = 32_000_000


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class AuditError(Exception):
    """What went wrong, in one line that says what to do (the CLI prints it, exit 2)."""


def load_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    try:
        return _load_keys(path)
    except (ValueError, KeyError, TypeError) as exc:  # JSON, base64, key bytes
        raise AuditError(
            f"公钥文件无效 {path} is not the operator's public keys ({type(exc).__name__}): "
            "save them with `jifen audit fetch --keys-out keys.json` (the JSON of GET "
            "/v1/audit/keys) or give a folder of <key id>.pem files"
        ) from None


def _load_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    if path.is_dir():
        keys: dict[str, Ed25519PublicKey] = {}
        for p in sorted(path.glob("*.pem")):
            k = serialization.load_pem_public_key(p.read_bytes())
            if isinstance(k, Ed25519PublicKey):
                keys[p.stem] = k
        return keys
    body = json.loads(path.read_text())
    if isinstance(body, dict):  # the page GET /v1/audit/keys answers, saved as it came
        body = body["items"]
    return {k["key_id"]: public_key_from_raw(unb64(k["public_key"])) for k in body}


def load_checkpoints(folder: Path | None) -> list[Checkpoint]:
    if folder is None or not folder.exists():
        return []
    return [Checkpoint.from_json(json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def save_checkpoint(folder: Path, cp: Checkpoint) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint-{cp.tree_size:012d}.json"
    path.write_text(json.dumps(cp.to_json(), indent=2) + "\n")
    return path


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return not line.strip()
    return True


def _header(path: Path, line: bytes) -> dict[str, Any]:
    """The export's first line, or one line saying why this is not an export."""
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise AuditError(
            f"不是审计导出 {path} is not a ledger export (its first line is not a "
            f"{EXPORT_FORMAT} header): give the file `jifen audit fetch` wrote"
        )
    return header


def verify_files(
    exports: list[Path],
    keys: dict[str, Ed25519PublicKey],
    checkpoints: Path | None = None,
    state: Path | None = None,
    on_progress: Callable[[int], Any] | None = None,
    jobs: int = 1,
    min_chunk_bytes: int = PARALLEL_MIN_CHUNK,
) -> Result:
    """Verify; after a clean run keep the checkpoint (in ``checkpoints``) and the leaves.

    ``jobs`` > 1: one export is read in that many contiguous byte ranges by as many forked
    processes (each at least ``min_chunk_bytes``), joined in order (domain/chunks.py); any
    finding or doubt in any of them and it is verified again, sequentially, from the start, so
    the result is always the sequential one."""
    previous = b""
    previous_cutover: int | None = None
    if state is not None and (state / "leaves.bin").exists():
        previous = (state / "leaves.bin").read_bytes()
    if state is not None and (state / "verified.json").exists():
        previous_cutover = json.loads((state / "verified.json").read_text()).get("legacy_cutover")
    saved = load_checkpoints(checkpoints)
    v = Verifier(keys, saved, previous, previous_cutover)
    # the verifier makes millions of small objects and no cycles: the cyclic collector, which
    # would walk them again and again as they pile up, is off while it runs (a quarter of the
    # CPU of a million-entry run, measured)
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = None
        if jobs > 1 and len(exports) == 1:
            result = _in_parallel(v, exports[0], jobs, min_chunk_bytes, on_progress)
        if result is None:
            v = Verifier(keys, saved, previous, previous_cutover)
            result = _feed_and_finish(v, exports, on_progress)
    finally:
        if collecting:
            gc.enable()
    if result.ok and result.checkpoint is not None:
        if checkpoints is not None:
            save_checkpoint(checkpoints, result.checkpoint)
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
            (state / "leaves.bin").write_bytes(result.leaves[: 32 * result.checkpoint.tree_size])
            verified = {**result.checkpoint.to_json(), "legacy_cutover": result.legacy_cutover}
            (state / "verified.json").write_text(json.dumps(verified, indent=2) + "\n")
    return result


def _feed_and_finish(
    v: Verifier, exports: list[Path], on_progress: Callable[[int], Any] | None
) -> Result:
    first = True
    for path in exports:
        with path.open("rb") as f:
            header = _header(path, f.readline())
            if first:
                v.feed_header(header)
                first = False
            line_no = 1
            while True:
                chunk = f.readlines(4_000_000)  # ~4 MB at a time: memory flat, progress shown
                if not chunk:
                    break
                try:
                    v.feed_lines(chunk)
                except orjson.JSONDecodeError:
                    bad = next(i for i, line in enumerate(chunk) if not _is_json(line))
                    raise AuditError(
                        f"导出文件损坏 {path} line {line_no + bad + 1} is not JSON: the file is "
                        "damaged or not an export; fetch it again (`jifen audit fetch`)"
                    ) from None
                line_no += len(chunk)
                if on_progress is not None:
                    on_progress(sum(map(len, chunk)))
    return v.finish()


def _in_parallel(
    v: Verifier,
    path: Path,
    jobs: int,
    min_chunk_bytes: int,
    on_progress: Callable[[int], Any] | None,
) -> Result | None:
    """The export verified in ``jobs`` byte ranges by forked processes and joined in order, or
    None (nothing reported) when it is small, cannot be forked, or any range has doubt."""
    from jifen.points.audit.domain import chunks as chunks_mod

    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.readline()
    header = _header(path, head)
    body = size - len(head)
    jobs = min(jobs, body // max(min_chunk_bytes, 1))
    if jobs < 2:
        return None
    v.feed_header(header)
    if v.findings:
        return None
    cuts = [len(head) + body * k // jobs for k in range(jobs)] + [size]
    ranges = [(str(path), cuts[k], cuts[k + 1], v.cutover) for k in range(jobs)]
    chunks = _scan_ranges(ranges, len(head), on_progress)
    if chunks is None:
        return None
    if not chunks_mod.join_chunks(v, chunks):
        return None
    result = v.finish()
    result.processes = jobs
    return result


def _scan_ranges(
    ranges: list[tuple[str, int, int, float]],
    head: int,
    on_progress: Callable[[int], Any] | None,
) -> list[Any] | None:
    """Every range scanned by its own forked process, in order; None at the first range with
    doubt, or when a process could not be started or died (the caller verifies in one)."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = []
    try:
        # forked: the workers share this process's modules and its hash key (chunks.py's hashes)
        pool = ProcessPoolExecutor(
            len(ranges), multiprocessing.get_context("fork"), initializer=_worker_started
        )
    except OSError:  # pragma: no cover - no process to be had: one process will do
        return None
    try:
        for (_, start, end, _), chunk in zip(ranges, pool.map(_scan_range, ranges), strict=True):
            if chunk is None:
                return None
            chunks.append(chunk)
            if on_progress is not None:
                on_progress(end - start + (head if start == head else 0))
    except (BrokenProcessPool, OSError):  # a worker killed (out of memory?) or not forked
        return None
    finally:
        # a range with doubt: the others' work is of no use, but they are let finish rather
        # than terminated — a worker killed while writing its (large) result leaves half a
        # message in the pool's result pipe, and the pool's manager thread then waits for the
        # rest for ever (seen: a test hung in this shutdown). Waiting costs at most one range.
        pool.shutdown(wait=True, cancel_futures=True)
    return chunks


def _worker_started() -> None:
    # a worker ended by a signal (the pool's own, or an operator's) ends: no handler of the
    # parent's
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _scan_range(task: tuple[str, int, int, float]) -> Any:
    """In a worker: the lines that start in bytes [start, end) of the export, scanned."""
    from jifen.points.audit.domain.chunks import scan_chunk

    path, start, end, cutover = task
    gc.disable()  # as in the parent: millions of small objects, no cycles
    with open(path, "rb") as f:
        f.seek(start - 1)
        if f.read(1) != b"\n":
            f.readline()  # the line under way belongs to the range before
        return scan_chunk(_lines(f, f.tell(), end), cutover)


def _lines(f: Any, pos: int, end: int) -> Iterator[bytes]:
    while pos < end:
        batch = f.readlines(4_000_000)
        if not batch:
            return
        for line in batch:
            if pos >= end:
                return
            pos += len(line)
            yield line
