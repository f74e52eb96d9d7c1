"""What a ledger entry is, which events make which entries, and how an account's chain grows.

Rules (DESIGN.md, ledger invariants): amounts are integers; a credit needs a verified
completion, a reversal needs that completion's credit, a debit needs a placed redemption, a
refund needs that redemption's debit; each of those happens at most once per completion or
redemption. A valid event that breaks a rule is refused with a reason (and dead-lettered by
the worker); it never stops the events after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from jifen.kernel.contracts import isoformat
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.points.domain.chain import GENESIS, hash_of_canonical


class Kind(StrEnum):
    CREDIT = "credit"
    REVERSAL = "reversal"
    DEBIT = "debit"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class ImpossibleEvent(ValueError):
    """A schema-valid event the ledger cannot apply; the message says why."""


# event type -> (entry kind, sign, which reference it is about)
EVENT_KINDS: dict[str, tuple[Kind, int, str]] = {
    "jifen.tasks.completion.verified.v1": (Kind.CREDIT, +1, "completion_id"),
    "jifen.tasks.completion.revoked.v1": (Kind.REVERSAL, -1, "completion_id"),
    "jifen.redeem.redemption.placed.v1": (Kind.DEBIT, -1, "redemption_id"),
    "jifen.redeem.redemption.cancelled.v1": (Kind.REFUND, +1, "redemption_id"),
}

ADJUSTMENT_TYPE = "jifen.points.adjustment.approved.v1"

# what must already exist (same reference) before this kind may be appended
REQUIRES: dict[Kind, Kind] = {Kind.REVERSAL: Kind.CREDIT, Kind.REFUND: Kind.DEBIT}

MAX_BALANCE = 2**62  # far beyond any scheme; keeps every sum inside PostgreSQL's bigint


@dataclass(frozen=True, slots=True)
class Posting:
    """An event turned into the movement it asks for (not yet placed in a chain)."""

    event_id: str
    event_type: str
    account_id: str
    kind: Kind
    amount: int
    org_id: str
    category: str | None
    job_id: str | None
    completion_id: str | None
    redemption_id: str | None
    occurred_at: datetime
    # reporting only (statements group spending by reward); not part of the hashed content
    reward_id: str | None = None

    @property
    def reference(self) -> tuple[str, str]:
        """What this entry is about: a completion, a redemption, or (adjustments) itself."""
        if self.completion_id is not None:
            return ("completion", self.completion_id)
        if self.redemption_id is not None:
            return ("redemption", self.redemption_id)
        return ("event", self.event_id)


def posting_from_event(event: dict[str, Any], occurred_at: datetime) -> Posting:
    kinds = EVENT_KINDS.get(event["type"])
    if kinds is None:
        raise ImpossibleEvent(f"the ledger does not apply events of type {event['type']}")
    kind, sign, _ = kinds
    data = event["data"]
    if data["account_id"] != event["subject"]:
        raise ImpossibleEvent(
            f"subject {event['subject']!r} is not the account {data['account_id']!r}"
        )
    points = data["points"]
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ImpossibleEvent(f"points must be a positive integer, got {points!r}")
    return Posting(
        event_id=event["id"],
        event_type=event["type"],
        account_id=data["account_id"],
        kind=kind,
        amount=sign * points,
        org_id=data["org_id"],
        category=data.get("category"),
        job_id=data.get("job_id"),
        completion_id=data.get("completion_id"),
        redemption_id=data.get("redemption_id"),
        occurred_at=occurred_at,
        reward_id=data.get("reward_id"),
    )


# the earliest event time accepted: long before any Jifen deployment
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def check_clock_skew(occurred_at: datetime, now: datetime, max_skew_seconds: float) -> None:
    """Refuse an event stamped further in the future than the allowed clock skew.

    Another host's clock may run a little ahead of the ledger's: such an event is applied and
    keeps the time it was sent with. One further ahead than any honest clock can be is not
    trusted (its time would misplace the entry in statements and windows): it is refused with
    a reason naming the skew and the bound. Events from the past are refused only before
    ``EARLIEST_EVENT_TIME``: a republished or redelivered event is legitimately old.
    """
    if occurred_at < EARLIEST_EVENT_TIME:
        # no redelivery is that old; such a time would also print as a short year ("999-…")
        # in the canonical leaf, which the schemas' four-digit years would not match
        raise ImpossibleEvent(
            f"event time {occurred_at.isoformat()} is before {EARLIEST_EVENT_TIME.date()}: "
            "not a time this ledger could have been sent"
        )
    ahead = (occurred_at - now).total_seconds()
    if ahead > max_skew_seconds:
        raise ImpossibleEvent(
            f"clock skew: event time is {ahead:.0f} s ahead of the ledger's clock, more than "
            f"the allowed {max_skew_seconds:g} s (JIFEN_MAX_CLOCK_SKEW_SECONDS)"
        )


@dataclass(frozen=True, slots=True)
class Head:
    """The tip of one ledger account's chain: the account is (org_id, account_id).

    ``org_id`` None is a head not yet bound to an organisation (tests, benchmarks); the
    write path always binds it, and :func:`append` refuses a posting of another org.
    """

    account_id: str
    seq: int = 0
    balance: int = 0
    earned: int = 0
    spent: int = 0
    hash: str = GENESIS
    org_id: str | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.org_id, self.account_id)


def account_key(p: Posting) -> tuple[str, str]:
    """The ledger account a posting moves: (organisation, account)."""
    return (p.org_id, p.account_id)


@dataclass(frozen=True, slots=True)
class Entry:
    """A posting placed in its account's chain. Its fields (``domain/entry.py``) come from
    :func:`canonical_content` (the hashed ones) and :meth:`recorded` (what the ledger adds)."""

    posting: Posting
    account_seq: int
    balance_after: int
    prev_hash: str
    entry_hash: str
    # the canonical content entry_hash was computed from, kept so it is built once an entry
    hashed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def content(self) -> dict[str, Any]:
        """What ``entry_hash`` covers (``entry.HASHED``), its time as UTC text."""
        if self.hashed:
            return dict(self.hashed)
        return canonical_content(self.posting, self.account_seq, self.balance_after, self.prev_hash)

    def recorded(self, entry_id: int, recorded_at: Any) -> dict[str, Any]:
        """Every field of ``entry.LEAF`` (in that order), the entry recorded as ``entry_id`` at
        ``recorded_at`` (UTC text for the leaf, the export and the event)."""
        return {
            **(self.hashed or self.content()),
            "entry_id": entry_id,
            "cause_type": self.posting.event_type,
            "recorded_at": recorded_at,
            "entry_hash": self.entry_hash,
        }

    def values(self, entry_id: int, recorded_at: datetime) -> dict[str, Any]:
        """The stored row's values by field name (``entry.FIELDS`` and ``entry.REPORTING``),
        its times as datetimes."""
        values = self.recorded(entry_id, recorded_at)
        values["occurred_at"] = self.posting.occurred_at
        values["reward_id"] = self.posting.reward_id
        return values


def canonical_content(p: Posting, seq: int, balance_after: int, prev_hash: str) -> dict[str, Any]:
    """What the entry's hash covers (``entry.HASHED``), its time as UTC text: with
    :meth:`Entry.recorded`, the one place saying which posting attribute becomes which field."""
    return {
        "account_id": p.account_id,
        "account_seq": seq,
        "kind": p.kind.value,
        "amount": p.amount,
        "balance_after": balance_after,
        "org_id": p.org_id,
        "category": p.category,
        "cause_event_id": p.event_id,
        "job_id": p.job_id,
        "completion_id": p.completion_id,
        "redemption_id": p.redemption_id,
        "occurred_at": isoformat(p.occurred_at),
        "prev_hash": prev_hash,
    }


def adjustment(
    *, event_id: str, account_id: str, amount: int, org_id: str, at: datetime
) -> Posting:
    """An approved correction: a new entry, never an edit of an old one."""
    if amount == 0:
        raise ImpossibleEvent("an adjustment of zero points changes nothing")
    return Posting(
        event_id=event_id,
        event_type=ADJUSTMENT_TYPE,
        account_id=account_id,
        kind=Kind.ADJUSTMENT,
        amount=amount,
        org_id=org_id,
        category=None,
        job_id=None,
        completion_id=None,
        redemption_id=None,
        occurred_at=at,
    )


def append(head: Head, posting: Posting) -> tuple[Head, Entry]:
    """Place ``posting`` at the tip of its account's chain; return the new head and entry."""
    if posting.account_id != head.account_id:
        raise ValueError("posting for another account")
    if head.org_id is not None and posting.org_id != head.org_id:
        raise ValueError("posting for the same account id in another organisation")
    balance = head.balance + posting.amount
    if abs(balance) > MAX_BALANCE:
        raise ImpossibleEvent(f"balance of {posting.account_id} would overflow")
    seq = head.seq + 1
    content = canonical_content(posting, seq, balance, head.hash)
    digest = hash_of_canonical(content)
    entry = Entry(posting, seq, balance, head.hash, digest, content)
    earned = (
        head.earned + posting.amount
        if posting.kind in (Kind.CREDIT, Kind.REVERSAL)
        else head.earned
    )
    spent = head.spent - posting.amount if posting.kind in (Kind.DEBIT, Kind.REFUND) else head.spent
    # the constructor, not dataclasses.replace: a third of this function's cost
    return Head(head.account_id, seq, balance, earned, spent, digest, head.org_id), entry


@dataclass
class Plan:
    entries: list[Entry]
    heads: dict[tuple[str, str], Head]
    duplicates: list[Posting]
    refused: list[tuple[Posting, str]]


def plan_batch(
    postings: list[Posting],
    heads: dict[tuple[str, str], Head],
    applied_event_ids: set[str],
    existing_refs: set[tuple[str, str, Kind]],
) -> Plan:
    """Decide, in event order, what each posting of a batch becomes.

    ``existing_refs`` holds (reference kind, reference id, entry kind) already in the ledger,
    e.g. ("completion", id, CREDIT). Pure: the worker feeds it what the database holds.
    ``heads`` are keyed by (org_id, account_id): a posting moves only its organisation's
    chain and balance of the account, never another organisation's.
    """
    refs = set(existing_refs)
    seen = set(applied_event_ids)
    heads = dict(heads)
    plan = Plan(entries=[], heads=heads, duplicates=[], refused=[])
    for p in postings:
        if p.event_id in seen:
            plan.duplicates.append(p)
            continue
        ref_kind, ref_id = p.reference
        if (ref_kind, ref_id, p.kind) in refs:
            plan.refused.append((p, f"{ref_kind} {ref_id} already has a {p.kind.value} entry"))
            continue
        needed = REQUIRES.get(p.kind)
        if needed is not None and (ref_kind, ref_id, needed) not in refs:
            plan.refused.append(
                (p, f"{p.kind.value} for {ref_kind} {ref_id} which has no {needed.value} entry")
            )
            continue
        try:
            key = (p.org_id, p.account_id)
            head, entry = append(heads.get(key) or Head(p.account_id, org_id=p.org_id), p)
        except ImpossibleEvent as exc:
            plan.refused.append((p, str(exc)))
            continue
        heads[key] = head
        seen.add(p.event_id)
        refs.add((ref_kind, ref_id, p.kind))
        plan.entries.append(entry)
    return plan


def person(subject: str) -> str:
    """The identity a subject names, for the two-person rule: ``ADM-A`` and `` adm-a`` are
    one person (Unicode case folding, surrounding white space dropped)."""
    return subject.strip().casefold()


def no_account(account_id: str, org: str | None = None) -> NotFound:
    """The 404 of an account the caller may not see: in ``org``, or (a volunteer's view)
    to them at all."""
    if org is None:
        return NotFound(
            Said(f"你看不到账户 {account_id}", f"no account {account_id} visible to you")
        )
    return NotFound(
        Said(f"组织 {org} 没有账户 {account_id}", f"no account {account_id} in organisation {org}")
    )


def adjustment_refusal(
    *, requested_by: str, approver: str | None, account_id: str, balance: int, amount: int
) -> tuple[str, Said] | None:
    """Why an adjustment may not go ahead, as (reason, detail), or None.

    The approver (when there is one) is a different person from the requester and from the
    beneficiary; a debit never takes the (organisation, account) balance below zero.
    """
    if approver is not None:
        if person(approver) == person(requested_by):
            return (
                "same_person",
                Said(
                    "申请人不能审批自己的调整",
                    "the admin who requested an adjustment cannot also decide it",
                ),
            )
        if person(approver) == person(account_id):
            return (
                "beneficiary",
                Said(
                    "调整的受益账户不能审批该调整",
                    "the account an adjustment is for cannot decide it",
                ),
            )
    if amount < 0 and balance + amount < 0:
        return (
            "adjustment_overdraws",
            Said(
                f"积分不足：余额 {balance}，调整 {amount} 后将为 {balance + amount}",
                f"insufficient points: the balance is {balance}, an adjustment of "
                f"{amount} would leave {balance + amount}",
            ),
        )
    return None
