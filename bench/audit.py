"""Part 6: ``jifen audit verify`` on a million-entry export against a bare SHA-256 of its bytes,
and proof sizes at 10^3 and 10^6 entries.

The export is written with the ledger's own domain functions (chain, canonical leaf, Merkle
root, Ed25519-signed checkpoint) in the verifier's NDJSON format, so the verifier checks a
real chain; filling a database with a million entries first would measure ingest again.
"""

from __future__ import annotations

import hashlib
import math
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.cpu import TICK, Reading, loadavg, parse_cpu_line, per_op
from bench.report import Report

VERIFY = "jifen audit verify"


def _children_ticks() -> int:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((r.ru_utime + r.ru_stime) * TICK)


def _reading(ticks: int) -> Reading:
    idle, total = parse_cpu_line(Path("/proc/stat").read_text())
    return Reading(time.perf_counter(), {VERIFY: ticks}, idle, total, loadavg())


T0 = datetime(2026, 10, 1, tzinfo=UTC)


def write_export(path: Path, n: int, accounts: int = 10_000) -> tuple[Ed25519PrivateKey, int]:
    from jifen.points.audit.domain.canonical import leaf_bytes
    from jifen.points.audit.domain.checkpoint import Checkpoint, sign_checkpoint
    from jifen.points.audit.domain.merkle import leaf_hash, root_of
    from jifen.points.audit.domain.verify import EXPORT_FORMAT
    from jifen.points.domain.ledger import Head, Kind, Posting, append

    key = Ed25519PrivateKey.generate()
    heads: dict[str, Head] = {}
    leaves: list[bytes] = []
    lines: list[bytes] = []
    for i in range(n):
        account = f"vol-{i % accounts:05d}"
        p = Posting(
            str(uuid.uuid4()),
            "jifen.tasks.completion.verified.v1",
            account,
            Kind.CREDIT,
            1 + i % 37,
            "jiangmen-riders",
            "hazard_patrol",
            str(uuid.uuid4()),
            str(uuid.uuid4()),
            None,
            T0 + timedelta(milliseconds=i),
        )
        head, e = append(heads.get(account) or Head(account), p)
        heads[account] = head
        content = e.content()
        content.update(
            entry_id=i + 1,
            cause_type=p.event_type,
            entry_hash=e.entry_hash,
            recorded_at=(T0 + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        lh = leaf_hash(leaf_bytes(content))
        leaves.append(lh)
        lines.append(orjson.dumps({"position": i, "leaf_hash": lh.hex(), "entry": content}))
    cp = sign_checkpoint(key, Checkpoint(n, root_of(leaves), "2026-11-01T00:00:00.000000Z", "k1"))
    header = {
        "format": EXPORT_FORMAT,
        "org_id": "jiangmen-riders",
        "start": 0,
        "end": n,
        "checkpoint": cp.to_json(),
    }
    with path.open("wb") as f:
        f.write(orjson.dumps(header) + b"\n")
        for k in range(0, n, 10_000):
            f.write(b"\n".join(lines[k : k + 10_000]) + b"\n")
    return key, n


def proof_sizes(n: int) -> tuple[int, int]:
    """Longest inclusion proof over sampled indices and a consistency proof, in bytes."""
    from jifen.points.audit.domain.merkle import Frontier, consistency_proof, inclusion_proof

    nodes: dict[tuple[int, int], bytes] = {}
    f = Frontier()
    for i in range(n):
        for level, index, node in f.append(hashlib.sha256(i.to_bytes(8, "big")).digest()):
            nodes[(level, index)] = node
    get = nodes.__getitem__  # type: ignore[assignment]

    def getter(level: int, index: int) -> bytes:
        return get((level, index))

    longest = max(len(inclusion_proof(i, n, getter)) for i in {0, n // 3, n // 2, n - 1})
    consistency = len(consistency_proof(n // 2 + 1, n, getter))
    return longest * 32, consistency * 32


def bench_audit(home: Path, rep: Report, n: int, cache: Path | None = None) -> None:
    """``cache``: a folder (under the ignored results/) keeping the export and its public key
    between runs, since writing a million chained entries takes minutes in Python."""
    folder = cache or home
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / f"export-{n}.ndjson"
    keys = folder / f"keys-{n}"
    if not (export.exists() and (keys / "k1.pem").exists()):
        t = time.perf_counter()
        key, _ = write_export(export, n)
        rep.notes.append(f"audit: wrote the {n:,}-entry export in {time.perf_counter() - t:.1f}s")
        keys.mkdir(exist_ok=True)
        (keys / "k1.pem").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    else:
        rep.notes.append(f"audit: reused the export in {folder} (delete it to write a new one)")
    size = export.stat().st_size
    jifen = Path(sys.executable).parent / "jifen"
    # the verifier's CPU (and its worker processes', if it splits the work): what this process
    # reaped from it; the machine's idle share and load from /proc
    before = _reading(0)
    kids = _children_ticks()
    t = time.perf_counter()
    out = subprocess.run(
        [str(jifen), "audit", "verify", str(export), "--keys", str(keys), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - t
    cpu = per_op(before, _reading(_children_ticks() - kids), n)
    rep.add(
        "6 audit",
        f"jifen audit verify, {n:,} entries ({size / 1e6:.0f} MB)",
        took,
        "s",
        entries_per_s=n / took,
        exit_code=out.returncode,
        output=out.stdout.strip()[-300:],
    )
    rep.add("6 audit", "verify rate", n / took, "entries/s", cpu=cpu)
    cpu_s = cpu["roles"][VERIFY]["cpu_s"] * 1_000_000 / n
    rep.add(
        "ratio",
        "audit verify CPU per million entries (target ≤ 6 s)",
        cpu_s,
        "s",
        target=6,
        met=cpu_s <= 6,
    )
    rep.check(
        "audit export verifies", out.returncode == 0, (out.stdout + out.stderr).strip()[-200:]
    )
    t = time.perf_counter()
    h = hashlib.sha256()
    with export.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    bare = time.perf_counter() - t
    rep.add(
        "6 audit",
        "reference: bare SHA-256 over the same bytes",
        n / bare,
        "entries/s",
        seconds=bare,
    )
    # per entry, the verifier recomputes an entry hash and a leaf hash, and builds the tree
    t = time.perf_counter()
    with export.open("rb") as f:
        f.readline()
        for line in f:
            hashlib.sha256(line).digest()
    per_line = time.perf_counter() - t
    rep.add("6 audit", "reference: one SHA-256 per export line", n / per_line, "entries/s")
    rep.add(
        "ratio",
        "audit verify / 10 s target (≤ 1 meets it)",
        took / 10,
        "×",
        target=1,
        met=took < 10,
    )
    for m in (1_000, 1_000_000):
        inc, cons = proof_sizes(m)
        bound = math.ceil(math.log2(m)) * 32
        rep.add("6 audit", f"inclusion proof at {m:,} entries (bound {bound} B)", inc, "bytes")
        rep.add("6 audit", f"consistency proof at {m:,} entries", cons, "bytes")
        rep.check(f"proof bound at {m:,}", inc <= bound, f"{inc} ≤ {bound} bytes")
