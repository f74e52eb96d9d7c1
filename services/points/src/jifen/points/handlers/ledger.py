"""Appending to the ledger inside the caller's transaction: the one write path for entries.

Used by the ledger worker (a batch of events) and by approved adjustments (one entry), so
every entry — whatever caused it — is deduplicated, checked, chained and announced alike:
the domain plans (``domain/ledger.py``), the repository writes (``db/repo.py``). The ledger
is its own outbox: each entry's ``jifen.points.entry.appended.v1`` is built from its row by
the ledger relay (``ledger_relay.py``, :func:`ledger_event_of_row`) once it committed, byte
for byte what :func:`ledger_event_unchecked` builds here from the entry.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import asyncpg

from jifen.kernel import topics
from jifen.kernel.contracts import Contracts, envelope, isoformat
from jifen.kernel.db import Queries
from jifen.kernel.outbox import enqueue_many
from jifen.points.db import repo
from jifen.points.domain.entry import ANNOUNCED, COLUMN_OF
from jifen.points.domain.ledger import Entry, Plan, Posting, account_key, plan_batch

SOURCE = "/jifen/points"
LEDGER_EVENT = "jifen.points.entry.appended.v1"


async def append_postings(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, postings: list[Posting]
) -> tuple[Plan, list[int]]:
    """Plan and append ``postings`` (in their order) in the open transaction of ``conn``.

    A ledger account is (org_id, account_id): each posting moves the chain and balance of its
    own organisation's account only. Row locks on the accounts' chain heads (taken in key
    order, so two writers never deadlock) serialise two writers on one account (a worker
    during a rebalance, an adjustment), so chains never fork; the dedupe and rule checks run
    after the locks are held, on committed data.
    """
    if not postings:
        return Plan(entries=[], heads={}, duplicates=[], refused=[]), []
    heads, tx = await repo.lock_heads(conn, q, sorted({account_key(p) for p in postings}))
    applied = await repo.applied_event_ids(conn, q, list({p.event_id for p in postings}))
    refs = await repo.existing_refs(
        conn,
        q,
        list({p.completion_id for p in postings if p.completion_id}),
        list({p.redemption_id for p in postings if p.redemption_id}),
    )
    plan = plan_batch(postings, heads, applied, refs)
    if plan.duplicates:
        await announce_again(conn, q, contracts, [p.event_id for p in plan.duplicates])
    if not plan.entries:
        return plan, []
    recorded_at = datetime.now(UTC)
    ids = await repo.insert_entries(conn, q, plan.entries, recorded_at, tx)
    changed = sorted({account_key(e.posting) for e in plan.entries})
    await repo.update_heads(conn, q, [plan.heads[k] for k in changed], tx)
    # a wrong sample rolls the batch back: no entry is stored whose event could not be sent
    check_sample(contracts, sample_events(ids, plan.entries, isoformat(recorded_at)))
    return plan, ids


def check_sample(contracts: Contracts, events: list[dict[str, Any]]) -> None:
    """Validate in full the first ledger event of each cause type in the batch.

    The others are built by the same code from postings of the same kind, whose fields the
    incoming contracts constrain at least as tightly as ``entry.appended`` does (proved by
    tests/unit/points/test_ingest_ledger_events.py), so validating each one again cost ~16% of the
    worker's CPU and could not fail where the sample passes. A wrong sample raises
    ContractViolation and rolls the batch back, as full validation did.
    """
    seen: set[str] = set()
    for ev in events:
        cause = ev["data"]["cause_type"]
        if cause not in seen:
            seen.add(cause)
            contracts.validate(ev)


def sample_events(ids: list[int], entries: list[Entry], recorded_text: str) -> list[dict[str, Any]]:
    """The ledger events of the first entry of each cause type: what :func:`check_sample`
    validates. Only these are built in the appending transaction; the relay builds every
    entry's event from its row once committed (:func:`ledger_event_of_row`, the same bytes)."""
    seen: set[str] = set()
    out = []
    for i, e in zip(ids, entries, strict=True):
        if e.posting.event_type not in seen:
            seen.add(e.posting.event_type)
            out.append(ledger_event_unchecked(i, e, recorded_text))
    return out


async def announce_again(
    conn: asyncpg.Connection, q: Queries, contracts: Contracts, cause_event_ids: list[str]
) -> None:
    """Publish again the ledger events of entries whose cause arrived a second time.

    A cause is sent again when its sender did not hear back (tasks republishes an uncredited
    completion, redeem a placed redemption without its debit), e.g. after a broker that forgot
    its topics let a consumer skip the first announcement. The event keeps its id, so a
    consumer that did apply it ignores it; one that missed it applies it now.
    """
    rows = await repo.entries_by_cause(conn, q, cause_event_ids)
    await enqueue_many(
        conn,
        [
            (topics.POINTS_LEDGER, r["account_id"], ledger_event_from_row(contracts, r))
            for r in rows
        ],
    )


def ledger_event_from_row(contracts: Contracts, r: Any) -> dict[str, Any]:
    """The entry's event again, from its stored row (validated: this path is rare)."""
    data = {f: r[COLUMN_OF.get(f, f)] for f in ANNOUNCED}
    data["occurred_at"] = isoformat(r["occurred_at"])
    data["recorded_at"] = isoformat(r["recorded_at"])
    return contracts.new_event(
        LEDGER_EVENT,
        source=SOURCE,
        subject=r["account_id"],
        event_id=uuid.UUID(ledger_event_id(r["cause_event_id"])),
        data=data,
    )


_LEDGER_NS = uuid.NAMESPACE_URL.bytes
_ANNOUNCED_OF = itemgetter(*ANNOUNCED)
# the columns of ANNOUNCED in a ledger_entry row, in that order (times formatted apart)
_ANNOUNCED_COLUMNS = tuple(COLUMN_OF.get(f, f) for f in ANNOUNCED)
_OCCURRED, _RECORDED = ANNOUNCED.index("occurred_at"), ANNOUNCED.index("recorded_at")


def ledger_event_id(cause_event_id: str) -> str:
    """``str(uuid5(NAMESPACE_URL, "jifen:ledger-entry:<cause>"))`` without building UUID objects
    (a third of the cost; tests/unit/points/test_ingest_ledger_events.py checks they agree)."""
    digest = bytearray(
        hashlib.sha1(  # noqa: S324 - UUID version 5 is defined on SHA-1
            _LEDGER_NS + f"jifen:ledger-entry:{cause_event_id}".encode()
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ledger_event_unchecked(entry_id: int, e: Entry, recorded_text: str) -> dict[str, Any]:
    """The ``entry.appended`` event of ``e``: its leaf without the predecessor's hash, timed
    ``recorded_text``; not validated here (see :func:`check_sample`)."""
    data = dict(zip(ANNOUNCED, _ANNOUNCED_OF(e.recorded(entry_id, recorded_text)), strict=True))
    return envelope(
        LEDGER_EVENT,
        source=SOURCE,
        subject=e.posting.account_id,
        event_id=ledger_event_id(e.posting.event_id),
        time=recorded_text,
        data=data,
    )


def utc_text(ts: datetime) -> str:
    """``isoformat(ts)`` (RFC 3339, UTC, ``Z``, microseconds) in a sixth of its time for the
    UTC datetimes asyncpg returns (``datetime.isoformat`` in C, not ``strftime``)."""
    if ts.tzinfo is UTC and ts.year >= 1000:  # strftime's %Y does not pad to four digits
        return ts.isoformat(timespec="microseconds")[:-6] + "Z"  # without its "+00:00"
    return isoformat(ts)


def ledger_event_of_row(r: Any, recorded_text: str | None = None) -> dict[str, Any]:
    """The ``entry.appended`` event of a stored row (``relay_entries``' columns), as
    :func:`ledger_event_unchecked` built it from the entry when it was appended: same fields,
    same order, same time, same id (tests/integration/points/test_ledger_relay.py compares the
    bytes). ``recorded_text``: the row's ``recorded_at`` as text, if the caller has it (one
    batch shares it). Not validated: the appending transaction validated a sample of its kind
    (:func:`check_sample`)."""
    values = [r[c] for c in _ANNOUNCED_COLUMNS]
    values[_OCCURRED] = utc_text(values[_OCCURRED])
    recorded = values[_RECORDED] = recorded_text or utc_text(values[_RECORDED])
    return envelope(
        LEDGER_EVENT,
        source=SOURCE,
        subject=r["account_id"],
        event_id=ledger_event_id(r["cause_event_id"]),
        time=recorded,
        data=dict(zip(ANNOUNCED, values, strict=True)),
    )
