"""Reconciliation: what tasks and redeem say happened, against what the ledger holds.

Every verified completion has exactly one credit of its points (caused by its verification
event), every revocation exactly one reversal, every placed redemption exactly one debit,
every cancellation exactly one refund — and no ledger entry points at a completion or
redemption the source service does not know (points from nowhere).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Mismatch:
    code: str
    reference: str
    message: str
    account_id: str | None = None
    entry_ids: tuple[int, ...] = ()

    def __str__(self) -> str:
        who = f" (account {self.account_id})" if self.account_id else ""
        ids = f" entries {list(self.entry_ids)}" if self.entry_ids else ""
        return f"[{self.code}] {self.reference}{who}: {self.message}{ids}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "reference": self.reference,
            "message": self.message,
            "account_id": self.account_id,
            "entry_ids": list(self.entry_ids),
        }


# (event field that makes an entry due, when it became due, entry kind, sign, what it is)
Rule = tuple[str, str, str, int, str]
_COMPLETION_RULES: tuple[Rule, ...] = (
    ("verified_event_id", "verified_at", "credit", 1, "verified completion"),
    ("revoked_event_id", "revoked_at", "reversal", -1, "revoked completion"),
)
_REDEMPTION_RULES: tuple[Rule, ...] = (
    ("placed_event_id", "created_at", "debit", -1, "placed redemption"),
    ("cancelled_event_id", "cancelled_at", "refund", 1, "cancelled redemption"),
)


def reconcile(
    completions: Iterable[dict[str, Any]],
    redemptions: Iterable[dict[str, Any]],
    entries: Iterable[dict[str, Any]],
    now: datetime | None = None,
    settle: timedelta = timedelta(0),
) -> list[Mismatch]:
    """All mismatches. An entry due less than ``settle`` before ``now`` and not yet in the
    ledger is in flight (events are asynchronous), not missing."""
    cutoff = None if now is None or not settle else now - settle
    by_ref: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        ref = e.get("completion_id") if e["kind"] in ("credit", "reversal") else None
        ref = ref or (e.get("redemption_id") if e["kind"] in ("debit", "refund") else None)
        if ref is not None:
            by_ref[(ref, e["kind"])].append(e)
    out: list[Mismatch] = []
    seen: set[str] = set()
    for c in completions:
        seen.add(c["completion_id"])
        out += _check(c, c["completion_id"], "completion", _COMPLETION_RULES, by_ref, cutoff)
    for r in redemptions:
        seen.add(r["redemption_id"])
        out += _check(r, r["redemption_id"], "redemption", _REDEMPTION_RULES, by_ref, cutoff)
    for (ref, kind), es in sorted(by_ref.items()):
        if ref not in seen:
            source = "tasks" if kind in ("credit", "reversal") else "redeem"
            out.append(
                Mismatch(
                    f"{kind}_without_source",
                    ref,
                    f"the ledger holds a {kind} for {ref}, which {source} does not know",
                    es[0]["account_id"],
                    tuple(e["entry_id"] for e in es),
                )
            )
    return out


def _check(
    item: dict[str, Any],
    ref: str,
    what: str,
    rules: tuple[Rule, ...],
    by_ref: dict[tuple[str, str], list[dict[str, Any]]],
    cutoff: datetime | None,
) -> list[Mismatch]:
    out: list[Mismatch] = []
    account = item["account_id"]
    for field, at, kind, sign, name in rules:
        found = by_ref.get((ref, kind), [])
        ids = tuple(e["entry_id"] for e in found)
        due = item.get(field) is not None
        if due and not found and cutoff is not None and _after(item.get(at), cutoff):
            continue  # in flight
        if due and not found:
            out.append(Mismatch(f"{kind}_missing", ref, f"{name} has no {kind}", account))
        elif not due and found:
            out.append(
                Mismatch(
                    f"{kind}_unexpected",
                    ref,
                    f"a {kind} exists but the {what} has no {field.removesuffix('_id')}",
                    account,
                    ids,
                )
            )
        elif len(found) > 1:
            out.append(Mismatch(f"{kind}_duplicated", ref, f"{len(found)} {kind}s", account, ids))
        if due and len(found) == 1:
            e = found[0]
            if e["amount"] != sign * item["points"]:
                out.append(
                    Mismatch(
                        "amount_mismatch",
                        ref,
                        f"{kind} of {e['amount']} for {item['points']} points",
                        account,
                        ids,
                    )
                )
            if item.get("org_id") is not None and e.get("org_id") != item["org_id"]:
                # a ledger account is (org, account): the points moved in another scheme
                out.append(
                    Mismatch(
                        "org_mismatch",
                        ref,
                        f"{kind} went to organisation {e.get('org_id')}, not {item['org_id']}",
                        account,
                        ids,
                    )
                )
            if e["account_id"] != account:
                out.append(
                    Mismatch(
                        "account_mismatch",
                        ref,
                        f"{kind} went to account {e['account_id']}",
                        account,
                        ids,
                    )
                )
            if e.get("cause_event_id") != item[field]:
                out.append(
                    Mismatch(
                        "cause_mismatch",
                        ref,
                        f"{kind} caused by event {e.get('cause_event_id')}, not {item[field]}",
                        account,
                        ids,
                    )
                )
    return out


def _after(when: Any, cutoff: datetime) -> bool:
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return isinstance(when, datetime) and when > cutoff
