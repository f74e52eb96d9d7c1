"""``make run`` and ``make stop``: the foreground supervisor around a ``DevStack``.

``run`` starts the stack on its fixed ports, seeds demo data through the public APIs
(``jifen.devtools.demo``), prints URLs and development tokens, then stays in the foreground
until Ctrl-C or ``make stop``, restarting a service process or the broker that dies, and
stops everything it started. ``down`` asks a running supervisor to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from jifen.devtools.demo import PEOPLE, seed, seed_people
from jifen.devtools.devstack import (
    BROKER_PIDFILE,
    DEMO_ORG,
    DEV_ROLES,
    SERVICES,
    DevStack,
    Ports,
)
from jifen.devtools.stack import PostgresCluster, broker_kind, pg_data_dir
from jifen.kernel.settings import REPO_ROOT


def reap_stale_broker(home: Path) -> None:
    """End a broker left running by a supervisor that died without stopping it (it runs in a
    session of its own): only the process named in ``home``'s pid file, and only if its
    command line names ``home``, so a reused pid is never touched."""
    pidfile = home / BROKER_PIDFILE
    if not pidfile.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if str(home.resolve()) in cmdline or str(home) in cmdline:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _configured_pg_data(home: Path) -> Path:
    """``make run``'s cluster: ``JIFEN_PG_DATA`` when set, else the one that belongs to home."""
    chosen = os.environ.get("JIFEN_PG_DATA")
    return Path(chosen) if chosen else pg_data_dir(home)


# `make run` restarts a service process that exits, unless it exited this often this recently
RESTART_LIMIT = 5
RESTART_WINDOW = 60.0


def run(home: Path | None = None) -> int:
    """The foreground supervisor behind ``make run``."""
    home = home or Path(os.environ.get("JIFEN_HOME", REPO_ROOT / "var"))
    home.mkdir(parents=True, exist_ok=True)
    pidfile = home / "stack.pid"
    if pidfile.exists():
        other = int(pidfile.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(other, 0)
            print(f"jifen is already running (pid {other}); `make stop` first", file=sys.stderr)
            return 1
    pidfile.write_text(str(os.getpid()))
    reap_stale_broker(home)
    stack = DevStack(home, Ports(), pg_data=_configured_pg_data(home))
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        broker = "Tansu broker" if broker_kind() == "tansu" else "Apache Kafka broker"
        print(f"starting jifen (embedded: own PostgreSQL, {broker}, 3 services)", flush=True)
        stack.start_infra()
        stack.start_services()
        seed_people(stack)  # first: the demo's volunteer on the honour roll must be on record
        seed(stack)
        stack.start_portal()
        stack.start_prometheus()
        _print_ready(stack)
        restarts: dict[str, list[float]] = {}
        while not stopping:
            if not stack.broker.running():
                # the broker died (OOM, a kill): start it again on its kept log, as the services
                now = time.monotonic()
                recent = [t for t in restarts.get("broker", []) if now - t < RESTART_WINDOW]
                if len(recent) >= RESTART_LIMIT:
                    print(
                        f"the broker keeps dying; stopping (log: {home / 'log'})", file=sys.stderr
                    )
                    stopping = True
                    break
                restarts["broker"] = [*recent, now]
                print("the broker exited; restarting it", file=sys.stderr, flush=True)
                try:
                    stack.start_broker()
                except (RuntimeError, TimeoutError) as exc:
                    print(f"broker: {exc}", file=sys.stderr)
            for proc in list(stack.procs.values()):
                if proc.popen.poll() is None:
                    continue
                # a process exits when one of its loops dies (runtime.spawn): start it again,
                # as an orchestrator would, unless it keeps dying
                log = home / "log" / (proc.name + ".log")
                now = time.monotonic()
                recent = [t for t in restarts.get(proc.name, []) if now - t < RESTART_WINDOW]
                if len(recent) >= RESTART_LIMIT:
                    print(
                        f"{proc.name} exited with {proc.popen.returncode}, {len(recent)} times "
                        f"in {RESTART_WINDOW:.0f} s; stopping (log: {log})",
                        file=sys.stderr,
                    )
                    stopping = True
                    break
                restarts[proc.name] = [*recent, now]
                print(
                    f"{proc.name} exited with {proc.popen.returncode}; restarting it (log: {log})",
                    file=sys.stderr,
                    flush=True,
                )
                service, kind = proc.name.split("-", 1)
                try:
                    stack.start_process(service, kind)
                except RuntimeError as exc:  # its port not free yet: the next pass tries again
                    print(f"{proc.name}: {exc}", file=sys.stderr)
            time.sleep(0.3)
        return 0
    except Exception as exc:
        print(f"failed to start: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping jifen …", flush=True)
        stack.stop()
        pidfile.unlink(missing_ok=True)
        print("stopped: no jifen process left running", flush=True)


def _print_ready(stack: DevStack) -> None:
    tokens = {role: stack.token(role) for role in DEV_ROLES}
    env_file = stack.home / "dev-tokens.sh"
    lines = [f"export {r.upper()}={t}" for r, t in tokens.items()]
    lines += [f"export {s.upper()}={stack.url(s)}" for s in SERVICES]
    env_file.write_text("\n".join(lines) + "\n")
    print("\nservices:")
    for s in SERVICES:
        print(
            f"  {s:<7} {stack.url(s)}   docs {stack.url(s)}/docs   "
            f"worker metrics http://127.0.0.1:{getattr(stack.ports, s + '_worker')}/metrics"
        )
    if stack.prometheus.proc is not None:
        print(f"  prometheus {stack.prometheus.url}   alerts {stack.prometheus.url}/classic/alerts")
    print(f"  points relay metrics   http://127.0.0.1:{stack.ports.points_relay}/metrics")
    print(f"\nportal 门户  {stack.url('portal')}   (sign in with a phone number below; the code")
    print(f"  is not texted in the embedded stack: read it at {stack.url('portal')}/ops with the")
    print("  operator token)")
    for person_id, phone, role, name in PEOPLE:
        print(f"  {role:<9} {person_id:<17} {phone}  {name}")
    print(f"  signals worker metrics http://127.0.0.1:{stack.ports.points_signals}/metrics")
    print(f"\ndevelopment tokens (organisation {DEMO_ORG}; also in {env_file}):")
    for role, tok in tokens.items():
        print(f"  {role:<9} {DEV_ROLES[role]:<17} {tok}")
    print(f"\n  source {env_file}   # then try the curl session in README.md")
    print("\nready  (Ctrl-C or `make stop` stops everything)", flush=True)


def down(home: Path | None = None, timeout: float = 60) -> int:
    """``make stop``: ask the running supervisor to stop, and wait until it has."""
    home = home or Path(os.environ.get("JIFEN_HOME", REPO_ROOT / "var"))
    pidfile = home / "stack.pid"
    if not pidfile.exists():
        print("jifen is not running")
        return 0
    pid = int(pidfile.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        # the supervisor died without cleaning up: stop the database it left behind
        PostgresCluster(_configured_pg_data(home), Ports().pg).stop()
        reap_stale_broker(home)
        print("jifen was not running (stale pid file removed)")
        return 0
    deadline = time.monotonic() + timeout
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    print("stopped" if not pidfile.exists() else "still stopping; check `ps`")
    return 0 if not pidfile.exists() else 1
