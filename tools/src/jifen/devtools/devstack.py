"""The whole system on one machine, on its embedded defaults: ``DevStack``.

Starts (in order) our own PostgreSQL cluster (data under ``var/``, kept between runs), the
broker (Apache Kafka in KRaft mode, its log under ``var/kafka``, kept between runs; or, with
``JIFEN_BROKER=tansu``, Tansu in memory), each service's API and worker, the points relay
(ledger relay and audit sequencer) and the points signals process as child processes, and
waits for every ``/readyz``. ``make run`` drives it from ``jifen.devtools.supervisor``;
the test session uses the same class on free ports in a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from jifen.devtools.stack import (
    SHARED_PG_ROOT,
    EmbeddedBroker,
    KafkaBroker,
    PostgresCluster,
    PrometheusServer,
    kafka_version,
    make_broker,
    pg_data_dir,
    port_open,
)
from jifen.kernel.auth import ensure_signing_key, issue_token
from jifen.kernel.metrics import SCRAPE_TOKEN_FILE, ensure_scrape_token
from jifen.kernel.settings import REPO_ROOT

SERVICES = ("tasks", "points", "redeem")
# services that connect as their own narrow role (created by their migrations), not the owner
SERVICE_ROLES = {"points": "jifen_points_app"}
DEMO_ORG = "jiangmen-riders"
DEV_ROLES = {
    "officer": "officer-li",
    "app": "app-qishou",
    "volunteer": "vol-0001",
    "merchant": "merchant-battery",
    "auditor": "auditor-union",
    "operator": "operator-ops",
    "admin": "admin-chen",
}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Ports:
    pg: int = field(default_factory=lambda: _env_int("JIFEN_PG_PORT", 55432))
    broker: int = field(default_factory=lambda: _env_int("JIFEN_BROKER_PORT", 19092))
    tasks: int = field(default_factory=lambda: _env_int("JIFEN_TASKS_PORT", 8001))
    points: int = field(default_factory=lambda: _env_int("JIFEN_POINTS_PORT", 8002))
    redeem: int = field(default_factory=lambda: _env_int("JIFEN_REDEEM_PORT", 8003))
    tasks_worker: int = field(default_factory=lambda: _env_int("JIFEN_TASKS_WORKER_PORT", 9001))
    points_worker: int = field(default_factory=lambda: _env_int("JIFEN_POINTS_WORKER_PORT", 9002))
    redeem_worker: int = field(default_factory=lambda: _env_int("JIFEN_REDEEM_WORKER_PORT", 9003))
    prometheus: int = field(default_factory=lambda: _env_int("JIFEN_PROMETHEUS_PORT", 9090))
    points_signals: int = field(default_factory=lambda: _env_int("JIFEN_POINTS_SIGNALS_PORT", 9012))
    # the ledger relay and audit sequencer (python -m jifen.points relay)
    points_relay: int = field(default_factory=lambda: _env_int("JIFEN_POINTS_RELAY_PORT", 9022))
    # the portal: the community app on the public APIs (python -m jifen.portal api)
    portal: int = field(default_factory=lambda: _env_int("JIFEN_PORTAL_PORT", 8004))


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes]


class DevStack:
    def __init__(
        self,
        home: Path,
        ports: Ports,
        *,
        say: bool = True,
        extra_env: dict[str, str] | None = None,
        pg_data: Path | None = None,
        broker: EmbeddedBroker | None = None,
    ) -> None:
        self.home = home
        self.ports = ports
        self.say_enabled = say
        self.extra_env = extra_env or {}
        self.pg = PostgresCluster(pg_data or pg_data_dir(home), ports.pg)
        self.broker: EmbeddedBroker = broker or make_broker(ports.broker, home)
        self.procs: dict[str, Proc] = {}
        self.prometheus = PrometheusServer(
            ports.prometheus,
            home / "prometheus",
            REPO_ROOT / "deploy" / "prometheus" / "rules",
            scrape_token_file=self.keys_dir / SCRAPE_TOKEN_FILE,
        )

    # -- output -------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        if self.say_enabled:
            print(msg, flush=True)

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def portal_credential_file(self) -> Path:
        return self.keys_dir / "portal-app-credential"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service)}"

    def dsn(self, service: str) -> str:
        """What the service connects as: its own role where it has one."""
        dsn = self.owner_dsn(service)
        role = SERVICE_ROLES.get(service)
        return dsn.replace("postgres@", f"{role}@", 1) if role else dsn

    def owner_dsn(self, service: str) -> str:
        return self.pg.dsn(f"jifen_{service}")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "JIFEN_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                # the processes know which broker they talk to (Tansu lacks idempotent producers)
                "JIFEN_BROKER": "tansu" if self.broker.kind == "tansu" else "kafka",
                "JIFEN_KEYS_DIR": str(self.keys_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for s in SERVICES:
            up = s.upper()
            env[f"JIFEN_{up}_DATABASE_URL"] = self.dsn(s)
            env[f"JIFEN_{up}_MIGRATE_DATABASE_URL"] = self.owner_dsn(s)
            env[f"JIFEN_{up}_PORT"] = str(getattr(self.ports, s))
            env[f"JIFEN_{up}_WORKER_PORT"] = str(getattr(self.ports, f"{s}_worker"))
        env["JIFEN_POINTS_SIGNALS_PORT"] = str(self.ports.points_signals)
        env["JIFEN_PORTAL_PORT"] = str(self.ports.portal)
        env["JIFEN_PORTAL_APP_CREDENTIAL_FILE"] = str(self.portal_credential_file)
        for s in SERVICES:
            env[f"JIFEN_PORTAL_{s.upper()}_URL"] = self.url(s)
        env["JIFEN_POINTS_RELAY_PORT"] = str(self.ports.points_relay)
        env.update(self.extra_env)
        return env

    # -- infrastructure -----------------------------------------------------------------
    def start_infra(self) -> None:
        (self.home / "log").mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        if SHARED_PG_ROOT in self.pg.data_dir.parents:
            self.say(
                f"  {self.home} is out of reach of the 'postgres' user PostgreSQL runs as: "
                f"its data is kept in {self.pg.data_dir} instead"
            )
        if self.pg.init():
            self.say(
                f"  created PostgreSQL cluster in {self.pg.data_dir} ({time.monotonic() - t:.1f}s)"
            )
        self.pg.start()
        self.say(f"  PostgreSQL  127.0.0.1:{self.ports.pg}  (data {self.pg.data_dir})")
        self.start_broker()
        ensure_signing_key(self.keys_dir)
        ensure_scrape_token(self.keys_dir)

    def describe_broker(self) -> str:
        b = self.broker
        if isinstance(b, KafkaBroker):
            return (
                f"Apache Kafka {kafka_version()}, KRaft, log {b.data_dir}; "
                f"started in {b.last_start_seconds:.1f}s"
                + (
                    f" after formatting in {b.last_format_seconds:.1f}s"
                    if b.last_format_seconds
                    else ""
                )
            )
        if b.kind == "kafka-cluster":
            took = getattr(b, "last_start_seconds", 0.0)
            return f"Apache Kafka, 3 KRaft nodes; started in {took:.1f}s"
        return "Tansu, in memory"

    def start_broker(self) -> None:
        self.broker.start()
        self.say(f"  broker      {self.broker.bootstrap}  ({self.describe_broker()})")
        proc = getattr(self.broker, "proc", None)
        if proc is not None:  # found and ended by the next run or `make stop` if we die
            (self.home / BROKER_PIDFILE).write_text(str(proc.pid))

    # -- services -----------------------------------------------------------------------
    def start_process(self, service: str, kind: str) -> Proc:
        name = f"{service}-{kind}"
        port = getattr(self.ports, service if kind == "api" else f"{service}_{kind}")
        if port_open(port):
            raise RuntimeError(f"port {port} for {name} is already in use")
        log = (self.home / "log" / f"{name}.log").open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", f"jifen.{service}", kind],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us in order
        )
        proc = Proc(name, port, popen)
        self.procs[name] = proc
        return proc

    def wait_ready(self, proc: Proc, timeout: float = 90) -> float:
        start = time.monotonic()
        deadline = start + timeout
        url = f"http://127.0.0.1:{proc.port}/readyz"
        last = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                log_file = self.home / "log" / (proc.name + ".log")
                tail = _tail(log_file, 5)
                raise RuntimeError(
                    f"{proc.name} exited with {proc.popen.returncode}; see {log_file}"
                    + ("; it ends:\n" + tail if tail else "")
                )
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(url, timeout=2)
                if r.status_code == 200:
                    return time.monotonic() - start
                last = r.text
            time.sleep(0.1)
        raise TimeoutError(f"{proc.name} not ready after {timeout:.0f}s: {last}")

    def start_services(self) -> None:
        # migrations first, one process per database, so the APIs and workers never race them
        for s in SERVICES:
            subprocess.run(
                [sys.executable, "-m", f"jifen.{s}", "migrate"],
                env=self.env(),
                check=True,
                cwd=REPO_ROOT,
                capture_output=True,
            )
        self.say("  databases migrated")
        order = [(s, k) for s in SERVICES for k in ("api", "worker")]
        order += [("points", "relay"), ("points", "signals")]
        for s, k in order:
            self.start_process(s, k)
        for i, (s, k) in enumerate(order, 1):
            proc = self.procs[f"{s}-{k}"]
            try:
                took = self.wait_ready(proc)
            except RuntimeError as exc:  # it exited while starting: once more, then give up
                # (a loaded machine once had the points relay's start fail, exit 3, after the
                # five processes before it had come up; a second failure is reported as is)
                self.say(f"  {exc}\n  starting {s} {k} once more")
                proc = self.start_process(s, k)
                took = self.wait_ready(proc)
            self.say(f"  [{i}/{len(order)}] {s} {k:<6} ready on :{proc.port} ({took:.1f}s)")

    def ensure_portal_credential(self) -> None:
        """The portal's app credential, issued once by the demo organisation's admin through
        the tasks API and kept (0600) beside the keys; issued again if tasks no longer knows it
        (a new database under old keys)."""
        path = self.portal_credential_file
        tasks = self.url("tasks")
        if path.exists():
            r = httpx.post(f"{tasks}/v1/apps/token", json={"credential": path.read_text().strip()})
            if r.status_code == 200:
                return
        r = httpx.post(
            f"{tasks}/v1/apps/credentials",
            headers={"Authorization": f"Bearer {self.token('admin')}"},
            json={"app_id": "app-portal", "writes_per_minute": 6000},
            timeout=30,
        )
        if r.status_code != 201:
            raise RuntimeError(f"cannot issue the portal's credential: {r.status_code} {r.text}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(r.json()["secret"] + "\n")

    def start_portal(self) -> Proc:
        """The portal, once the services answer (it signs in with its credential at start)."""
        self.ensure_portal_credential()
        proc = self.start_process("portal", "api")
        took = self.wait_ready(proc)
        self.say(f"  portal ready on :{proc.port} ({took:.1f}s)  {self.url('portal')}")
        return proc

    def scrape_jobs(self) -> dict[str, list[int]]:
        p = self.ports
        return {
            "jifen-tasks": [p.tasks, p.tasks_worker],
            "jifen-points": [p.points, p.points_worker, p.points_relay, p.points_signals],
            "jifen-redeem": [p.redeem, p.redeem_worker],
            **({"jifen-portal": [p.portal]} if "portal-api" in self.procs else {}),
        }

    def start_prometheus(self, interval: str = "5s") -> bool:
        """Start Prometheus against the stack if it is installed; True if it runs."""
        if not PrometheusServer.available():
            self.say("  (Prometheus not installed: `make deps` installs it)")
            return False
        self.prometheus.start(self.scrape_jobs(), interval=interval)
        self.say(
            f"  Prometheus  {self.prometheus.url}  (scraping every {interval}, alert rules loaded)"
        )
        return True

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.popen.poll() is not None:
            return
        proc.popen.send_signal(sig)
        try:
            proc.popen.wait(10)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_process(name)
        self.prometheus.stop()
        self.broker.stop()
        (self.home / BROKER_PIDFILE).unlink(missing_ok=True)
        self.pg.stop()

    def token(
        self,
        role: str,
        subject: str | None = None,
        org: str = DEMO_ORG,
        ttl_seconds: int = 7 * 24 * 3600,
    ) -> str:
        return issue_token(
            self.keys_dir,
            subject=subject or DEV_ROLES[role],
            role=role,
            org=org,
            ttl_seconds=ttl_seconds,
        )


BROKER_PIDFILE = "broker.pid"


def _tail(path: Path, n: int) -> str:
    """The last ``n`` lines of a log, each cut to 300 characters ("" if there is none)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line[:300] for line in lines[-n:] if line.strip())
