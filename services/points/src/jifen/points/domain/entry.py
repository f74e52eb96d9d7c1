"""A ledger entry's fields, named once: the ``ledger_entry`` row, the
``jifen.points.entry.appended.v1`` event, the content an entry's hash covers and the audit
export's entry (its Merkle leaf) are each a selection of ``FIELDS``, in this order.

Where an entry's values come from is spelled once too, in ``domain/ledger.py``
(:func:`~jifen.points.domain.ledger.canonical_content` and :func:`~jifen.points.domain.ledger.
entry_values`); the row, the event and the export only pick and format what those give.
Times are datetimes in the row and RFC 3339 UTC text (``jifen.kernel.contracts.isoformat``)
everywhere else. schemas/ledger/README.md gives the hash and leaf rules to outside verifiers.
"""

from __future__ import annotations

# every field of an entry, in the order the audit export writes them (and the row stores them)
FIELDS = (
    "entry_id",
    "account_id",
    "account_seq",
    "kind",
    "amount",
    "balance_after",
    "org_id",
    "category",
    "cause_event_id",
    "cause_type",
    "job_id",
    "completion_id",
    "redemption_id",
    "occurred_at",
    "recorded_at",
    "prev_hash",
    "entry_hash",
)
# what the ledger adds when it records an entry: not covered by the entry's own hash
RECORDED = ("entry_id", "cause_type", "recorded_at", "entry_hash")
# the content ``entry_hash`` is the SHA-256 of (with the predecessor's hash): ``chain.py``
HASHED = tuple(f for f in FIELDS if f not in RECORDED)
# the Merkle leaf and the audit export's entry: the hashed content and what was recorded
LEAF = (*HASHED, *RECORDED)
# the data of ``jifen.points.entry.appended.v1``: all but the predecessor's hash
ANNOUNCED = tuple(f for f in FIELDS if f != "prev_hash")
# fields that are times (datetimes in the row, UTC text in the event, the hash and the export)
TIMES = ("occurred_at", "recorded_at")

# the ledger_entry table: the fields under their column names, then what only reports read
COLUMN_OF = {"entry_id": "id"}
REPORTING = ("reward_id",)  # statements group spending by reward; not part of the entry's hash
COLUMNS = (*(COLUMN_OF.get(f, f) for f in FIELDS), *REPORTING)
