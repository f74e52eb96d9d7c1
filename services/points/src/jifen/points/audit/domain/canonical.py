"""The canonical form of an exported ledger entry and of its Merkle leaf (schemas/ledger/).

An entry's own ``entry_hash`` covers ``jifen.points.domain.chain.CANONICAL_FIELDS`` (its
content and its predecessor's hash in the same account). Its Merkle leaf commits to all of
``LEAF_FIELDS`` — that content plus the entry id, the event type, when it was recorded and
its ``entry_hash`` — as the same canonical JSON: keys sorted, no whitespace, UTF-8, integers
as integers, times RFC 3339 UTC with microseconds and ``Z``, hashes lower-case hex, absent
references ``null``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from jifen.points.domain.chain import CANONICAL_FIELDS

LEAF_FIELDS = (*CANONICAL_FIELDS, "entry_id", "cause_type", "recorded_at", "entry_hash")
HEX64 = frozenset("0123456789abcdef")


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_from_row(row: Any) -> dict[str, Any]:
    """An entry as exported, from a ledger_entry row (mapping with the table's columns)."""
    return {
        "entry_id": row["entry_id"],
        "account_id": row["account_id"],
        "account_seq": row["account_seq"],
        "kind": row["kind"],
        "amount": row["amount"],
        "balance_after": row["balance_after"],
        "org_id": row["org_id"],
        "category": row["category"],
        "cause_event_id": row["cause_event_id"],
        "cause_type": row["cause_type"],
        "job_id": row["job_id"],
        "completion_id": row["completion_id"],
        "redemption_id": row["redemption_id"],
        "occurred_at": rfc3339(row["occurred_at"]),
        "recorded_at": rfc3339(row["recorded_at"]),
        "prev_hash": row["prev_hash"],
        "entry_hash": row["entry_hash"],
    }


def hash_bytes(entry: dict[str, Any]) -> bytes:
    """What ``entry_hash`` is the SHA-256 of."""
    return orjson.dumps({f: entry[f] for f in CANONICAL_FIELDS}, option=orjson.OPT_SORT_KEYS)


def leaf_bytes(entry: dict[str, Any]) -> bytes:
    """What the entry's Merkle leaf hash is SHA-256(0x00 || ·) of."""
    return orjson.dumps({f: entry[f] for f in LEAF_FIELDS}, option=orjson.OPT_SORT_KEYS)


def recompute_entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(hash_bytes(entry)).hexdigest()
