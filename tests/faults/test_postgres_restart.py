"""PostgreSQL stopped and started again under load, no service process restarted.

While completions and redemptions are being sent: every process's /readyz says 503 and names
the database, /healthz stays 200, requests fail with a clear 503 (never a hang); after the
restart /readyz is 200 again in the same processes, and every accepted request — and any
that committed although its answer was lost — is in the ledger exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from jifen.devtools.devstack import DevStack
from tests.e2e.redeem.test_redeem_wallet import add_reward, redeem_once, wallet_when
from tests.e2e.test_typical_journey import earn
from tests.faults.conftest import PROCESSES, account_ledger, assert_consistent
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e

CHECKED = [(s, k) for s, k in PROCESSES if k != "signals"]  # the signals app has no database


def until(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A probe for `eventually` from a plain condition on what the load recorded."""

    async def probe() -> bool:
        return condition()

    return probe


async def load_reaches(load: Load, condition: Callable[[], bool], what: str) -> None:
    try:
        await eventually(until(condition), timeout=120, what=what)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; accepted {len(load.credited_ok)} earns and {len(load.redeemed_ok)}"
            f" redemptions; last failures: {load.failures[-4:]}"
        ) from None


@dataclass
class Load:
    accounts: list[str] = field(default_factory=list)  # every account an earn was tried for
    credited_ok: dict[str, int] = field(default_factory=dict)  # verify answered 200
    redeemed_ok: list[str] = field(default_factory=list)  # redemption answered 201
    failures: list[str] = field(default_factory=list)  # what the clients saw instead
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _earn_forever(tasks: Api, run: str, load: Load) -> None:
    i = 0
    while not load.stop.is_set():
        i += 1
        account = f"vol-pg-{run}-{i}"
        load.accounts.append(account)
        started = time.monotonic()
        points = 5 + i % 7
        try:
            await earn(tasks, account, points)
            load.credited_ok[account] = points
        except AssertionError as exc:  # a step answered something else than success
            load.failures.append(f"earn: {str(exc).splitlines()[0][:200]}")
            await asyncio.sleep(0.2)  # pacing, not synchronisation
        except httpx.TimeoutException:
            load.failures.append(f"earn: HANG {time.monotonic() - started:.1f}s")
        except httpx.TransportError as exc:
            load.failures.append(f"earn: CLOSED {exc!r}")
        except Exception as exc:  # reported by the assertions below
            load.failures.append(f"earn: BUG {exc!r}")
            await asyncio.sleep(0.2)


async def _redeem_forever(redeem: Api, account: str, reward: str, load: Load) -> None:
    while not load.stop.is_set():
        started = time.monotonic()
        try:
            r = await redeem_once(redeem, account, reward)
        except httpx.TimeoutException:
            load.failures.append(f"redeem: HANG {time.monotonic() - started:.1f}s")
            continue
        except httpx.TransportError as exc:
            load.failures.append(f"redeem: CLOSED {exc!r}")
            continue
        except Exception as exc:  # reported by the assertions below
            load.failures.append(f"redeem: BUG {exc!r}")
            await asyncio.sleep(0.2)
            continue
        if r.status_code == 201:
            load.redeemed_ok.append(r.json()["id"])
            await asyncio.sleep(0.3)  # pacing: the spender's points last the whole test
        elif r.status_code == 409 and r.json()["reason"] == "insufficient_points":
            return  # spent out (would take minutes at this pace)
        else:
            load.failures.append(f"redeem: {r.status_code} {r.text[:200]}")
            await asyncio.sleep(0.2)


def _exited(stack: DevStack) -> dict[str, object]:
    """Processes that exited, with their exit code and the end of their log."""
    out: dict[str, object] = {}
    for name, p in stack.procs.items():
        if p.popen.poll() is not None:
            log = (stack.home / "log" / f"{name}.log").read_text(errors="replace")
            out[name] = (p.popen.returncode, log[-3000:])
    return out


async def _probe_all(http: httpx.AsyncClient, stack: DevStack, path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for service, kind in CHECKED:
        port = stack.procs[f"{service}-{kind}"].port
        try:
            r = await http.get(f"http://127.0.0.1:{port}{path}")
            out[f"{service}-{kind}"] = (r.status_code, r.json())
        except httpx.HTTPError as exc:
            out[f"{service}-{kind}"] = (0, repr(exc))
    return out


async def test_postgres_restart_under_load_loses_nothing_and_invents_nothing(
    fstack: DevStack, fapis: dict[str, Api], ledger_db: asyncpg.Connection
) -> None:
    tasks, redeem = fapis["tasks"], fapis["redeem"]
    run = uuid.uuid4().hex[:6]
    spender = f"vol-pg-{run}-spender"
    await earn(tasks, spender, 400)
    reward = await add_reward(redeem, 2, stock=10_000)
    await wallet_when(redeem, spender, spendable=400)
    pids = {name: p.popen.pid for name, p in fstack.procs.items()}
    load = Load()
    workers = [
        asyncio.create_task(_earn_forever(tasks, run, load)),
        asyncio.create_task(_redeem_forever(redeem, spender, reward, load)),
    ]
    ledger_db_closed = False
    try:
        await load_reaches(
            load,
            lambda: len(load.credited_ok) >= 2 and len(load.redeemed_ok) >= 2,
            "load accepted before the outage",
        )
        await ledger_db.close()
        ledger_db_closed = True
        await asyncio.to_thread(fstack.pg.stop)
        assert not fstack.pg.running(), "PostgreSQL did not stop"
        async with httpx.AsyncClient(timeout=10) as http:
            seen: list[dict[str, object]] = [{}]

            async def all_unready() -> dict[str, object] | None:
                got = seen[0] = await _probe_all(http, fstack, "/readyz")
                for status, body in got.values():  # type: ignore[misc]
                    if status != 503 or body["checks"]["database"]["ok"] is not False:
                        return None
                return got

            try:
                unready = await eventually(all_unready, timeout=60, what="503 from every /readyz")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last answers: {seen[0]}") from None
            for _status, body in unready.values():  # type: ignore[misc]
                assert body["status"] == "not ready"
                assert body["checks"]["database"]["detail"], body
            alive = await _probe_all(http, fstack, "/healthz")
            assert all(s == 200 for s, _ in alive.values()), alive  # type: ignore[misc]
            failed_before = len(load.failures)
            # the load keeps knocking during the outage and hears a clear error each time
            await load_reaches(
                load,
                lambda: len(load.failures) >= failed_before + 4,
                "failed requests during the outage",
            )
            await asyncio.to_thread(fstack.pg.start)

            async def all_ready() -> dict[str, object] | None:
                got = await _probe_all(http, fstack, "/readyz")
                return got if all(s == 200 for s, _ in got.values()) else None  # type: ignore[misc]

            await eventually(all_ready, timeout=120, what="200 from every /readyz again")
        accepted_at_restart = (len(load.credited_ok), len(load.redeemed_ok))
        await load_reaches(
            load,
            lambda: (
                len(load.credited_ok) >= accepted_at_restart[0] + 2
                and len(load.redeemed_ok) >= accepted_at_restart[1] + 2
            ),
            "load accepted after the outage",
        )
    finally:
        load.stop.set()
        for w in workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w, 60)
        if not fstack.pg.running():  # a failure during the outage: do not mask it here
            await asyncio.to_thread(fstack.pg.start)
        if ledger_db_closed:
            ledger_db = await asyncpg.connect(fstack.owner_dsn("points"))
    try:
        # the same processes throughout: none was restarted to recover
        assert {n: p.popen.pid for n, p in fstack.procs.items()} == pids
        assert not _exited(fstack), f"exited during the outage: {_exited(fstack)}"
        hangs = [f for f in load.failures if "HANG" in f]
        assert not hangs, hangs
        # a problem+json 503 each: the client knows the database was away and may retry with
        # its key (never a 500, after which the server would also drop the connection)
        assert load.failures, "no request met the outage: the check below would prove nothing"
        errors = [f for f in load.failures if '"status":503' not in f]
        assert not errors, f"failures other than 503: {errors[:5]}"
        await _assert_exactly_once(fstack, fapis, ledger_db, load, spender)
    finally:
        if ledger_db_closed:
            await ledger_db.close()


async def _assert_exactly_once(
    stack: DevStack,
    apis: dict[str, Api],
    ledger_db: asyncpg.Connection,
    load: Load,
    spender: str,
) -> None:
    tasks_db = await asyncpg.connect(stack.owner_dsn("tasks"))
    redeem_db = await asyncpg.connect(stack.owner_dsn("redeem"))
    try:
        # what tasks verified, whether or not its answer reached the client
        verified = {
            r["account_id"]: (str(r["id"]), r["points"])
            for r in await tasks_db.fetch(
                "SELECT c.id, c.account_id, j.points FROM completion c JOIN job j"
                " ON j.id = c.job_id WHERE c.status = 'verified' AND c.account_id = ANY($1)",
                load.accounts,
            )
        }
        assert set(load.credited_ok) <= set(verified)
        placed = {
            str(r["id"])
            for r in await redeem_db.fetch(
                "SELECT id FROM redemption WHERE account_id = $1", spender
            )
        }
        assert set(load.redeemed_ok) <= placed

        async def settled() -> bool:
            for account in verified:
                if len(await account_ledger(ledger_db, account)) != 1:
                    return False
            debits = [e for e in await account_ledger(ledger_db, spender) if e["kind"] == "debit"]
            return len(debits) >= len(placed)

        await eventually(settled, timeout=180, what="every verified completion and redemption")
        for account, (completion, points) in verified.items():
            entries = await account_ledger(ledger_db, account)
            assert [(e["kind"], e["amount"], e["completion_id"]) for e in entries] == [
                ("credit", points, completion)
            ], account
        entries = await account_ledger(ledger_db, spender)
        assert_consistent(entries)
        debits = [e for e in entries if e["kind"] == "debit"]
        assert sorted(e["redemption_id"] for e in debits) == sorted(placed)
        assert entries[-1]["balance_after"] == 400 - 2 * len(placed)
        # and no credit appeared for an account whose completion was never verified
        stray = await ledger_db.fetchval(
            "SELECT count(*) FROM ledger_entry WHERE account_id = ANY($1)",
            [a for a in load.accounts if a not in verified],
        )
        assert stray == 0
    finally:
        await tasks_db.close()
        await redeem_db.close()
    redeem = apis["redeem"]
    vol = redeem.auth("volunteer", spender)

    async def all_confirmed() -> bool:
        for rid in placed:
            r = await redeem.http.get(f"/v1/redemptions/{rid}", headers=vol)
            if r.json()["status"] != "confirmed":
                return False
        return True

    await eventually(all_confirmed, timeout=120, what="every placed redemption confirmed")
    await wallet_when(redeem, spender, ledger_balance=400 - 2 * len(placed), held=0)
