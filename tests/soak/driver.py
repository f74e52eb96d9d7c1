"""``python -m tests.soak --duration 10m [--seed N]``: the soak, from start to verdict.

1. A stack of its own (PostgreSQL, the broker, the three services' APIs and workers, the
   signals process) in a temporary folder on free ports: it never clashes with ``make run``
   or a test session, and it is always torn down (also on Ctrl-C and SIGTERM).
2. For ``--duration``: the workload (workload.py) and, at the same time, the chaos loop
   (chaos.py), with a progress line every ``--progress`` seconds.
3. The chaos stops, the workload finishes what it started, and the system is left to
   converge (``--settle`` seconds at most): nothing left in any outbox, every verified
   completion credited and acknowledged, every revocation reversed, no redemption waiting
   for its debit or refund, every wallet equal to its ledger balance.
4. The real reconciliation and the real audit verification, the figures, and the verdict.
   Exit 0 only on a pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from jifen.devtools.devstack import DevStack
from jifen.kernel.settings import REPO_ROOT
from jifen.points.audit.client import fetch_export, run_reconcile
from tests.helpers import free_ports
from tests.soak import checks
from tests.soak.chaos import FAULTS, Chaos, DeadLetters, Meter, clock
from tests.soak.workload import Workload


def duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 45s, 10m, 1h)")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]


def interval(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    a, b = duration(low), duration(high or low)
    if not 0 < a <= b:
        raise argparse.ArgumentTypeError(f"not an interval: {text!r} (e.g. 10-30)")
    return a, b


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=duration, default=duration("10m"), help="e.g. 45s, 10m")
    p.add_argument("--seed", type=int, default=None, help="default: a new one, printed")
    p.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"comma-separated, of: {', '.join(FAULTS)} (default: all)",
    )
    p.add_argument(
        "--interval", type=interval, default=(8.0, 25.0), help="seconds between faults: 8-25"
    )
    p.add_argument("--lanes", type=int, default=6, help="concurrent workload lanes")
    p.add_argument("--volunteers", type=int, default=120)
    p.add_argument("--settle", type=duration, default=duration("6m"), help="convergence bound")
    p.add_argument("--progress", type=duration, default=12.0, help="seconds between lines")
    p.add_argument("--keep", action="store_true", help="keep the stack's folder afterwards")
    args = p.parse_args(argv)
    args.fault_kinds = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = set(args.fault_kinds) - set(FAULTS)
    if unknown:
        p.error(f"unknown faults: {', '.join(sorted(unknown))}")
    return args


def say(line: str) -> None:
    print(line, flush=True)


async def audit_verify(stack: DevStack) -> str:
    """What a union runs (docs/AUDIT.md): a fresh signed checkpoint, `jifen audit fetch` of the
    export and the public keys, then `jifen audit verify` offline. On a failure, the last words
    of both its outputs."""
    points = stack.url("points")
    async with httpx.AsyncClient(timeout=120) as http:
        r = await http.post(
            f"{points}/v1/audit/checkpoints",
            headers={"Authorization": f"Bearer {stack.token('admin')}"},
        )
        if r.status_code not in (200, 201):
            return f"FAILED: no checkpoint ({r.status_code} {r.text[:200]})"
    with tempfile.TemporaryDirectory() as tmp:
        export, keys = Path(tmp) / "export.ndjson", Path(tmp) / "keys.json"
        await fetch_export(points, stack.token("auditor"), export, keys)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jifen.kernel.cli",
            "audit",
            "verify",
            str(export),
            "--keys",
            str(keys),
            "--no-progress",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
        )
        out, err = await proc.communicate()
    lines = out.decode(errors="replace").strip().splitlines()
    if proc.returncode == 0 and lines:
        return "passed: " + lines[-1]
    tail = lines[-6:] + err.decode(errors="replace").strip().splitlines()[-6:]
    return f"FAILED (exit {proc.returncode}): " + " | ".join(tail or ["(no output)"])


class Soak:
    def __init__(self, stack: DevStack, args: argparse.Namespace, seed: int) -> None:
        self.stack = stack
        self.args = args
        self.seed = seed
        self.began = time.monotonic()
        self.stall = (0.0, 0.0)  # the longest pause in appending: from, to (soak seconds)
        self.meter = Meter(stack)
        self.dead_letters = DeadLetters()
        self.chaos = Chaos(
            stack,
            seed=seed,
            kinds=args.fault_kinds,
            interval=args.interval,
            meter=self.meter,
            dead_letters=self.dead_letters,
            began=self.began,
            say=say,
        )
        urls = {s: stack.url(s) for s in ("tasks", "points", "redeem")}
        self.workload = Workload(
            urls, stack.keys_dir, volunteers=args.volunteers, lanes=args.lanes, seed=seed
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    async def applied(self) -> str:
        try:
            n = await checks.value(
                self.stack.owner_dsn("points"), "SELECT count(*) FROM ledger_entry"
            )
            return str(n)
        except Exception:  # PostgreSQL restarting: say so rather than stop
            return "?"

    async def watch_ledger(self, every: float = 2.0) -> None:
        """The longest pause in appending while the workload runs (how long a fault held the
        ledger up before the system noticed and recovered)."""
        last, since = -1, self.elapsed()
        while True:
            text = await self.applied()
            now = self.elapsed()
            if text != "?" and int(text) != last:
                last, since = int(text), now
            elif now - since > self.stall[1] - self.stall[0]:
                self.stall = (since, now)
            await asyncio.sleep(every)

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(self.args.progress)
            faults = self.chaos.faults
            last = f", last: {faults[-1].kind} at {clock(faults[-1].at)}" if faults else ""
            say(
                f"[{clock(self.elapsed())}] sent {self.workload.sent()}, "
                f"applied {await self.applied()}, faults {len(faults)}{last}"
            )

    async def run(self) -> bool:
        args = self.args
        await self.workload.setup(hours=args.duration / 3600 + 3)
        background = [
            asyncio.create_task(self.meter.loop()),
            asyncio.create_task(self.chaos.watch()),
            asyncio.create_task(self.watch_ledger()),
            asyncio.create_task(self.progress()),
        ]
        stop_chaos = asyncio.Event()
        chaos = asyncio.create_task(self.chaos.run(stop_chaos))
        work = asyncio.create_task(self.workload.run())
        try:
            await asyncio.sleep(args.duration)
            self.workload.stopping.set()
            stop_chaos.set()
            background[-1].cancel()  # the progress line
            background[-2].cancel()  # the stall watch: only while the workload runs
            say(f"[{clock(self.elapsed())}] time is up: chaos stopping, workload finishing")
            await chaos
            await work
            say(
                f"[{clock(self.elapsed())}] workload done ({self.workload.sent()} sent); "
                f"converging (at most {clock(args.settle)})"
            )
            converged, took, left = await self.converge(args.settle)
            await self.meter.scrape_all()
            await self.dead_letters.collect(self.stack.broker.bootstrap)
            return await self.judge(converged, took, left)
        finally:
            for t in [*background, chaos, work]:
                t.cancel()
            await asyncio.gather(*background, chaos, work, return_exceptions=True)
            await self.workload.close()
            await self.meter.close()

    async def converge(self, bound: float) -> tuple[bool, float, dict[str, int]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        shown = start
        left: dict[str, int] = {}
        while True:
            try:
                left = {k: v for k, v in (await checks.pending(self.stack)).items() if v}
            except Exception as exc:
                left = {f"(could not ask: {type(exc).__name__})": 1}
            if not left:
                return True, loop.time() - start, left
            if loop.time() - start > bound:
                return False, loop.time() - start, left
            if loop.time() - shown >= 15:
                shown = loop.time()
                say(
                    f"  converging {clock(loop.time() - start)}: "
                    + ", ".join(f"{k} {v}" for k, v in left.items())
                )
            await asyncio.sleep(2)

    async def judge(self, converged: bool, took: float, left: dict[str, int]) -> bool:
        stack, w = self.stack, self.workload
        k = w.known
        stuck: list[str] = []
        if not converged:
            say("\nNOT CONVERGED; still pending: " + ", ".join(f"{a} {b}" for a, b in left.items()))
            with contextlib.suppress(Exception):
                stuck = await checks.what_is_pending(stack)
            for line in stuck:
                say(f"  {line}")
        f = await checks.figures(stack, k.verified, k.revoked, set(k.placed), k.cancelled)
        auditor = stack.token("auditor")
        mismatches = await run_reconcile(
            stack.url("points"), stack.url("tasks"), stack.url("redeem"), auditor, settle_seconds=0
        )
        verification = await audit_verify(stack)
        lost = [m for m in mismatches if m.code.endswith("_missing")]
        doubled = [m for m in mismatches if m.code.endswith("_duplicated")]
        other = [m for m in mismatches if m not in lost and m not in doubled]

        m = self.meter
        owed, applied = f.owed, f.applied
        kinds = ("credit", "reversal", "debit", "refund")
        outcomes = Counter(w.tally.outcomes)
        faults = self.chaos.counts()
        dlq = self.dead_letters.reasons()
        dlq_counter = m.total("jifen_kafka_events_dead_lettered_total")
        consumed = {
            s: m.total("jifen_kafka_events_consumed_total", f"{s}-worker", topic="points.ledger")
            for s in ("tasks", "redeem")
        }
        # the events that owe a ledger entry, as the relays published them (republishing included)
        owing = {
            "credit": ("tasks", "jifen.tasks.completion.verified.v1"),
            "reversal": ("tasks", "jifen.tasks.completion.revoked.v1"),
            "debit": ("redeem", "jifen.redeem.redemption.placed.v1"),
            "refund": ("redeem", "jifen.redeem.redemption.cancelled.v1"),
        }
        published = {
            kind: m.total("jifen_kafka_events_produced_total", f"{s}-worker", type=t)
            for kind, (s, t) in owing.items()
        }
        announced = m.total("jifen_kafka_events_produced_total", "points-worker")
        recoveries = [x.recovered for x in self.chaos.faults if x.recovered is not None]
        lines: list[tuple[str, str]] = [
            (
                "workload",
                f"{outcomes['completions verified']} completions verified, "
                f"{outcomes['completions rejected']} rejected, "
                f"{outcomes['completions revoked']} revoked; "
                f"{outcomes['redemptions placed']} redemptions placed, "
                f"{outcomes['redemptions cancelled']} cancelled, "
                + ", ".join(
                    f"{n} {what}"
                    for what, n in sorted(outcomes.items())
                    if "refused" in what or "left" in what
                )
                + f"; {w.retries} HTTP retries through faults, "
                f"{sum(w.abandoned.values())} journeys abandoned",
            ),
            (
                "events sent",
                f"{sum(owed.values())} owed to the ledger (tasks and redeem databases): "
                + ", ".join(f"{owed.get(x, 0)} {x}s" for x in kinds)
                + f"; published {sum(published.values())} times by the relays, republishing "
                "included ("
                + ", ".join(f"{published[x]} {x}s" for x in kinds)
                + f"); the ledger announced its entries {announced} times "
                "(scraped counters summed across restarts: at least)",
            ),
            (
                "applied",
                f"{sum(applied.values())} ledger entries: "
                + ", ".join(f"{applied.get(x, 0)} {x}s" for x in kinds)
                + (f", {applied['adjustment']} adjustments" if applied.get("adjustment") else ""),
            ),
            (
                "duplicates absorbed",
                f"{m.total('jifen_points_duplicate_events_total')} by the ledger "
                "(jifen_points_duplicate_events_total summed across restarts, at least); "
                + ", ".join(
                    f"{max(0, consumed[s] - f.inbox[s])} by the {s} inbox "
                    f"({consumed[s]} ledger events consumed for {f.inbox[s]} applied)"
                    for s in ("tasks", "redeem")
                ),
            ),
            (
                "dead-lettered",
                f"{len(self.dead_letters.records)} read from the *.dlq topics "
                f"(before each broker restart and at the end"
                + (
                    f"; {self.dead_letters.failed_reads} reads failed"
                    if self.dead_letters.failed_reads
                    else ""
                )
                + f"); the counters say {dlq_counter}"
                + "".join(f"\n{'':22}{n:>5} × {reason}" for reason, n in dlq.most_common()),
            ),
            (
                "faults injected",
                f"{len(self.chaos.faults)}: "
                + ", ".join(f"{n} × {kind}" for kind, n in sorted(faults.items()))
                + (
                    f"; back within {min(recoveries):.1f}–{max(recoveries):.1f} s"
                    if recoveries
                    else ""
                )
                + f"\n{'':22}timeline: "
                + ", ".join(f"{clock(x.at)} {x.kind}" for x in self.chaos.faults)
                + "".join(
                    f"\n{'':22}{x.kind} at {clock(x.at)}: {x.note}"
                    for x in self.chaos.faults
                    if x.note
                )
                + (
                    "\n" + f"{'':22}exits nobody asked for: " + "; ".join(self.chaos.unexpected)
                    if self.chaos.unexpected
                    else "; no process exited by itself"
                ),
            ),
            (
                "ledger pauses",
                f"longest pause in appending while the workload ran: "
                f"{self.stall[1] - self.stall[0]:.0f} s "
                f"(from {clock(self.stall[0])} to {clock(self.stall[1])})",
            ),
            (
                "convergence",
                f"converged {took:.0f} s after the workload stopped"
                if converged
                else f"NOT converged after {took:.0f} s: "
                + ", ".join(f"{a} {b}" for a, b in left.items()),
            ),
            (
                "reconciliation",
                f"{len(mismatches)} mismatches: {len(lost)} lost, {len(doubled)} doubled, "
                f"{len(other)} other" + "".join(f"\n{'':22}{x}" for x in mismatches[:20]),
            ),
            ("audit verification", verification),
            (
                "balances",
                f"{f.accounts} accounts; "
                + (
                    "every balance equal to its entries"
                    if not f.mismatched_balances
                    else f"{len(f.mismatched_balances)} NOT equal to their entries: "
                    + "; ".join(f.mismatched_balances[:5])
                )
                + "; "
                + (
                    f"none below zero (lowest running balance {f.min_balance_after})"
                    if not f.below_zero and f.min_balance_after >= 0
                    else f"BELOW ZERO: {'; '.join(f.below_zero[:5])} "
                    f"(lowest running balance {f.min_balance_after})"
                ),
            ),
            (
                "acknowledged writes",
                "every completion, revocation, redemption and cancellation the APIs "
                "acknowledged is in its database"
                if not f.missing_at_source
                else f"{len(f.missing_at_source)} MISSING: " + "; ".join(f.missing_at_source[:5]),
            ),
        ]
        checks_failed = []
        if not converged:
            checks_failed.append("did not converge")
        if lost:
            checks_failed.append(f"{len(lost)} lost")
        if doubled:
            checks_failed.append(f"{len(doubled)} doubled")
        if other:
            checks_failed.append(f"{len(other)} other mismatches")
        if not verification.startswith("passed"):
            checks_failed.append("audit verification failed")
        if f.mismatched_balances:
            checks_failed.append(f"{len(f.mismatched_balances)} balances not equal to entries")
        if f.below_zero or f.min_balance_after < 0:
            checks_failed.append("a balance below zero")
        if f.missing_at_source:
            checks_failed.append(f"{len(f.missing_at_source)} acknowledged writes missing")
        say("\n" + "=" * 78)
        say(
            f"soak summary: seed {self.seed}, duration {clock(self.args.duration)}, faults "
            f"every {self.args.interval[0]:g}-{self.args.interval[1]:g} s, "
            f"{self.args.lanes} lanes, {self.args.volunteers} volunteers"
        )
        for label, text in lines:
            say(f"  {label:<20}{text}")
        if checks_failed:
            say(f"verdict: FAIL — {', '.join(checks_failed)}")
        else:
            say(
                "verdict: PASS — zero lost, zero doubled, every balance equal to its entries, "
                "no balance below zero"
            )
        say("=" * 78)
        return not checks_failed


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    command = (
        f"python -m tests.soak --duration {int(args.duration)}s --seed {seed} "
        f"--faults {','.join(args.fault_kinds)} "
        f"--interval {args.interval[0]:g}-{args.interval[1]:g} --lanes {args.lanes} "
        f"--volunteers {args.volunteers}"
    )
    say(f"soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, seed {seed}; to repeat: {command}")
    say("faults: " + "; ".join(FAULTS[k] for k in args.fault_kinds))
    # /tmp itself: the 'postgres' user must reach the data folder
    home = Path(tempfile.mkdtemp(prefix="jifen-soak-"))
    os.chmod(home, 0o755)  # noqa: S103
    stack = DevStack(
        home,
        free_ports(),
        say=False,
        extra_env={
            # the bounds after which the outboxes' owners publish again what was not answered
            "JIFEN_TASKS_CREDIT_TIMEOUT_SECONDS": "5",
            "JIFEN_REDEEM_RESEND_AFTER_SECONDS": "10",
            # a killed member's partitions move at session timeout
            "JIFEN_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "JIFEN_WRITE_RATE_PER_MINUTE": "0",
        },
    )

    def terminate(*_: object) -> None:
        raise KeyboardInterrupt("terminated")

    signal.signal(signal.SIGTERM, terminate)
    passed = False
    try:
        t = time.monotonic()
        stack.start_infra()
        stack.start_services()
        say(f"stack up in {time.monotonic() - t:.0f} s (home {home}); workload and chaos start")
        passed = asyncio.run(Soak(stack, args, seed).run())
    except KeyboardInterrupt:
        say("interrupted: tearing the stack down")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the teardown itself is not interrupted
        stack.stop()
        if not passed:
            kept = REPO_ROOT / "results" / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
            with contextlib.suppress(OSError):
                shutil.copytree(home / "log", kept / "log")
                say(f"services' logs kept in {kept / 'log'}")
        if args.keep:
            say(f"stack folder kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0 if passed else 1
