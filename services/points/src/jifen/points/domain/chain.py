"""Hash chaining of ledger entries, per ledger account: (org_id, account_id).

Each entry's hash covers its canonical content and its predecessor's hash in the same
account, so changing, removing, inserting or reordering any past entry of an account breaks
every later hash of that account. Chains are per account so that workers owning different
partitions never serialise on one global chain, and per organisation so that one
organisation's chain never runs through another's entries. Entries written before migration
0011 (ids up to the recorded cutover) were chained per bare account_id; schemas/ledger/
README.md gives both rules and how the first new entry continues a legacy chain.

Canonical encoding: the JSON object of ``CANONICAL_FIELDS`` with keys sorted, no
whitespace, UTF-8, integers as integers, times as RFC 3339 UTC with microseconds and ``Z``,
hashes as lower-case hex, absent references as ``null``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from jifen.points.domain.entry import HASHED

GENESIS = "0" * 64

# the fields of an entry its hash covers, named in domain/entry.py
CANONICAL_FIELDS = HASHED


def canonical_bytes(content: dict[str, Any]) -> bytes:
    missing = [f for f in CANONICAL_FIELDS if f not in content]
    if missing:
        raise ValueError(f"entry lacks {missing}")
    return orjson.dumps({f: content[f] for f in CANONICAL_FIELDS}, option=orjson.OPT_SORT_KEYS)


def entry_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


def hash_of_canonical(content: dict[str, Any]) -> str:
    """``entry_hash`` of a content that has exactly ``CANONICAL_FIELDS`` as its keys (what
    ``ledger.canonical_content`` makes; tests/unit/points/test_chain_fast_hash.py holds them
    together): no check and no copy, for the worker's hot path."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
