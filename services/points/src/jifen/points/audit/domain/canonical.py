"""The canonical form of an exported ledger entry and of its Merkle leaf (schemas/ledger/).

The fields are named once, in ``jifen.points.domain.entry``. An entry's own ``entry_hash``
covers ``CANONICAL_FIELDS`` (its content and its predecessor's hash in the same account). Its
Merkle leaf commits to all of ``LEAF_FIELDS`` — that content plus the entry id, the event
type, when it was recorded and its ``entry_hash`` — as the same canonical JSON: keys sorted,
no whitespace, UTF-8, integers as integers, times RFC 3339 UTC with microseconds and ``Z``
(``jifen.kernel.contracts.isoformat``), hashes lower-case hex, absent references ``null``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from jifen.kernel.contracts import isoformat
from jifen.points.domain.chain import CANONICAL_FIELDS
from jifen.points.domain.entry import FIELDS, LEAF

LEAF_FIELDS = LEAF
HEX64 = frozenset("0123456789abcdef")


def entry_from_row(row: Any) -> dict[str, Any]:
    """An entry as exported (``entry.FIELDS``, in that order), from a ledger_entry row (a
    mapping with the table's columns, the id as ``entry_id``), its times as UTC text."""
    entry = {f: row[f] for f in FIELDS}
    entry["occurred_at"] = isoformat(row["occurred_at"])
    entry["recorded_at"] = isoformat(row["recorded_at"])
    return entry


def hash_bytes(entry: dict[str, Any]) -> bytes:
    """What ``entry_hash`` is the SHA-256 of."""
    return orjson.dumps({f: entry[f] for f in CANONICAL_FIELDS}, option=orjson.OPT_SORT_KEYS)


def leaf_bytes(entry: dict[str, Any]) -> bytes:
    """What the entry's Merkle leaf hash is SHA-256(0x00 || ·) of."""
    return orjson.dumps({f: entry[f] for f in LEAF_FIELDS}, option=orjson.OPT_SORT_KEYS)


def recompute_entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(hash_bytes(entry)).hexdigest()
