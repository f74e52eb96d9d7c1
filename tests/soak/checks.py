"""What the soak reads from the three databases: what is still pending (convergence), what
was owed and what was applied, and whether every balance equals its entries and none is
below zero. The reconciliation and the audit verification themselves are the real ones
(``jifen audit reconcile`` and ``jifen audit fetch`` + ``verify``), called from driver.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from jifen.devtools.devstack import DevStack

APPENDED = "jifen.points.entry.appended.v1"


async def rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql, *args, timeout=60))
    finally:
        await conn.close()


async def value(dsn: str, sql: str, *args: Any) -> Any:
    got = await rows(dsn, sql, *args)
    return got[0][0] if got else None


PENDING_TASKS = {
    "credits not acknowledged to tasks": "SELECT count(*) FROM completion WHERE status IN"
    " ('verified', 'revoked') AND verified_event IS NOT NULL AND credited_at IS NULL",
    "reversals not acknowledged to tasks": "SELECT count(*) FROM completion"
    " WHERE status = 'revoked' AND reversed_at IS NULL",
    "tasks outbox": "SELECT count(*) FROM outbox",
}
PENDING_REDEEM = {
    "redemptions awaiting their debit": "SELECT count(*) FROM redemption"
    " WHERE status IN ('pending', 'cancelling')",
    "refunds not acknowledged to redeem": "SELECT count(*) FROM redemption"
    " WHERE cancelled_event_id IS NOT NULL AND refunded_at IS NULL",
    "points held in wallets": "SELECT coalesce(sum(held), 0) FROM wallet",
    "redeem outbox": "SELECT count(*) FROM outbox",
}
PENDING_POINTS = {"points outbox": "SELECT count(*) FROM outbox"}


async def pending(stack: DevStack) -> dict[str, int]:
    """Everything not yet settled; all zero means converged."""
    out: dict[str, int] = {}
    for service, queries in (
        ("tasks", PENDING_TASKS),
        ("redeem", PENDING_REDEEM),
        ("points", PENDING_POINTS),
    ):
        for what, sql in queries.items():
            out[what] = int(await value(stack.owner_dsn(service), sql))
    ledger = await balances(stack)
    wallets = {
        f"{r['org_id']}/{r['account_id']}": r["ledger_balance"]
        for r in await rows(
            stack.owner_dsn("redeem"), "SELECT org_id, account_id, ledger_balance FROM wallet"
        )
    }
    out["wallets behind the ledger"] = sum(
        1 for a in set(ledger) | set(wallets) if ledger.get(a, 0) != wallets.get(a, 0)
    )
    # a process that is up but not ready (e.g. a worker whose consumer holds no partitions)
    async with httpx.AsyncClient(timeout=3) as http:
        for name, proc in list(stack.procs.items()):
            try:
                r = await http.get(f"http://127.0.0.1:{proc.port}/readyz")
                ready, why = r.status_code == 200, r.text[:160]
            except httpx.HTTPError as exc:
                ready, why = False, type(exc).__name__
            if not ready:
                out[f"{name} not ready ({why})"] = 1
    return out


async def balances(stack: DevStack) -> dict[str, int]:
    """Each ledger account's balance, keyed ``org/account``."""
    return {
        f"{r['org_id']}/{r['account_id']}": r["balance"]
        for r in await rows(
            stack.owner_dsn("points"), "SELECT org_id, account_id, balance FROM account"
        )
    }


async def what_is_pending(stack: DevStack, limit: int = 10) -> list[str]:
    """The first few unsettled items, each with what the ledger holds for it."""
    lines: list[str] = []
    completions = await rows(
        stack.owner_dsn("tasks"),
        "SELECT id, account_id, status, verified_at, last_published_at, credited_at,"
        " revoked_at, revoke_published_at, reversed_at FROM completion"
        " WHERE (status IN ('verified', 'revoked') AND verified_event IS NOT NULL"
        "        AND credited_at IS NULL)"
        "    OR (status = 'revoked' AND reversed_at IS NULL)"
        " ORDER BY verified_at LIMIT $1",
        limit,
    )
    redemptions = await rows(
        stack.owner_dsn("redeem"),
        "SELECT id, account_id, status, created_at, asked_at, cancelled_at, refunded_at"
        " FROM redemption WHERE status IN ('pending', 'cancelling')"
        "    OR (cancelled_event_id IS NOT NULL AND refunded_at IS NULL)"
        " ORDER BY created_at LIMIT $1",
        limit,
    )
    entries: dict[str, list[str]] = {}
    ids = [r["id"] for r in completions] + [r["id"] for r in redemptions]
    if ids:
        for e in await rows(
            stack.owner_dsn("points"),
            "SELECT coalesce(completion_id, redemption_id)::text AS ref, kind, id"
            " FROM ledger_entry WHERE completion_id = ANY($1) OR redemption_id = ANY($1)",
            ids,
        ):
            entries.setdefault(e["ref"], []).append(f"{e['kind']} #{e['id']}")
    for r in completions:
        held = ", ".join(entries.get(str(r["id"]), [])) or "nothing"
        lines.append(
            f"completion {r['id']} ({r['account_id']}, {r['status']}): verified "
            f"{_t(r['verified_at'])}, last published {_t(r['last_published_at'])}, credited "
            f"{_t(r['credited_at'])}, revoked {_t(r['revoked_at'])}, reversed "
            f"{_t(r['reversed_at'])}; the ledger holds {held}"
        )
    for r in redemptions:
        held = ", ".join(entries.get(str(r["id"]), [])) or "nothing"
        lines.append(
            f"redemption {r['id']} ({r['account_id']}, {r['status']}): placed "
            f"{_t(r['created_at'])}, last asked {_t(r['asked_at'])}, cancelled "
            f"{_t(r['cancelled_at'])}, refunded {_t(r['refunded_at'])}; the ledger holds {held}"
        )
    return lines


def _t(when: Any) -> str:
    return "-" if when is None else when.strftime("%H:%M:%S")


@dataclass
class Figures:
    owed: dict[str, int] = field(default_factory=dict)  # entry kind -> events owed
    applied: dict[str, int] = field(default_factory=dict)  # entry kind -> entries
    inbox: dict[str, int] = field(default_factory=dict)  # service -> ledger events applied
    accounts: int = 0
    mismatched_balances: list[str] = field(default_factory=list)
    below_zero: list[str] = field(default_factory=list)
    min_balance_after: int = 0
    missing_at_source: list[str] = field(default_factory=list)


async def figures(
    stack: DevStack,
    verified: set[str],
    revoked: set[str],
    placed: set[str],
    cancelled: set[str],
) -> Figures:
    f = Figures()
    tasks, redeem, points = (stack.owner_dsn(s) for s in ("tasks", "redeem", "points"))
    f.owed["credit"] = int(
        await value(
            tasks,
            "SELECT count(*) FROM completion"
            " WHERE status IN ('verified', 'revoked') AND verified_event IS NOT NULL",
        )
    )
    f.owed["reversal"] = int(
        await value(tasks, "SELECT count(*) FROM completion WHERE status = 'revoked'")
    )
    f.owed["debit"] = int(
        await value(redeem, "SELECT count(*) FROM redemption WHERE placed_event_id IS NOT NULL")
    )
    f.owed["refund"] = int(
        await value(redeem, "SELECT count(*) FROM redemption WHERE cancelled_event_id IS NOT NULL")
    )
    for r in await rows(points, "SELECT kind, count(*) AS n FROM ledger_entry GROUP BY kind"):
        f.applied[r["kind"]] = int(r["n"])
    for service, dsn in (("tasks", tasks), ("redeem", redeem)):
        f.inbox[service] = int(
            await value(dsn, "SELECT count(*) FROM applied_event WHERE event_type = $1", APPENDED)
        )
    # every balance equal to its entries (the projection against the append-only rows)
    for r in await rows(
        points,
        # a ledger account is (organisation, account): one chain and one balance each
        "SELECT coalesce(a.org_id, e.org_id) || '/' || coalesce(a.account_id, e.account_id)"
        "       AS account_id, a.balance, a.seq, e.total, e.n, e.last_balance"
        " FROM account a FULL JOIN ("
        "   SELECT org_id, account_id, sum(amount) AS total, count(*) AS n,"
        "          (array_agg(balance_after ORDER BY account_seq DESC))[1] AS last_balance"
        "   FROM ledger_entry GROUP BY org_id, account_id) e USING (org_id, account_id)",
    ):
        f.accounts += 1
        total = int(r["total"] or 0)
        if r["balance"] is None or r["balance"] != total or r["last_balance"] != total:
            f.mismatched_balances.append(
                f"{r['account_id']}: balance {r['balance']}, entries sum to {total}, "
                f"last running balance {r['last_balance']}"
            )
        if total < 0:
            f.below_zero.append(f"{r['account_id']}: {total}")
    f.min_balance_after = int(
        await value(points, "SELECT coalesce(min(balance_after), 0) FROM ledger_entry")
    )
    # what the APIs acknowledged to the workload is at its source, in the state acknowledged
    states = {
        str(r["id"]): r["status"]
        for r in await rows(
            tasks,
            "SELECT id, status FROM completion WHERE id = ANY($1::uuid[])",
            list(verified | revoked),
        )
    }
    for c in sorted(verified):
        if states.get(c) not in ("verified", "revoked"):
            f.missing_at_source.append(f"completion {c} verified, now {states.get(c)}")
    for c in sorted(revoked):
        if states.get(c) != "revoked":
            f.missing_at_source.append(f"completion {c} revoked, now {states.get(c)}")
    found = {
        str(r["id"]): r
        for r in await rows(
            redeem,
            "SELECT id, status, placed_event_id, cancelled_at FROM redemption"
            " WHERE id = ANY($1::uuid[])",
            list(placed),
        )
    }
    for rid in sorted(placed):
        if rid not in found or found[rid]["placed_event_id"] is None:
            f.missing_at_source.append(f"redemption {rid} placed, not found")
    for rid in sorted(cancelled):
        # a cancellation is recorded at once (cancelled_at); its event, and so its id, only
        # once the debit is seen (a `cancelling` redemption waits for it: docs/REDEEM.md)
        got = found.get(rid)
        if got is None or got["cancelled_at"] is None:
            f.missing_at_source.append(f"redemption {rid} cancelled, no cancellation recorded")
    return f
