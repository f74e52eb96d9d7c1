"""The service processes parts 4 and 5 drive, and their bearer tokens."""

from __future__ import annotations

import subprocess
import sys

from jifen.devtools.devstack import SERVICES, DevStack, Proc
from jifen.kernel.settings import REPO_ROOT


def kinds(stack: DevStack) -> list[tuple[str, str]]:
    """(service, kind) of every process the dev stack has a port for: each service's API and
    each ``<service>_<kind>`` port (worker today; a points relay once the stack has one), the
    signals app excepted (it would replay every benchmark event)."""
    fields = list(stack.ports.__dataclass_fields__)
    return [
        (s, k)
        for s in SERVICES
        for k in ["api", *(f.removeprefix(f"{s}_") for f in fields if f.startswith(f"{s}_"))]
        if (s, k) != ("points", "signals")
    ]


def start_services(stack: DevStack, profile: bool = False) -> None:
    """The service processes, found by :func:`kinds`, so a process the stack gains is run and
    its CPU read by name. ``profile``: the redeem API under pyinstrument
    (redeem-api-profile.txt)."""
    for s in SERVICES:
        subprocess.run(
            [sys.executable, "-m", f"jifen.{s}", "migrate"],
            env=stack.env(),
            check=True,
            cwd=REPO_ROOT,
            capture_output=True,
        )
    order = kinds(stack)
    for s, k in order:
        if profile and (s, k) == ("redeem", "api"):
            out = stack.home / "redeem-api-profile.txt"
            log = (stack.home / "log" / "redeem-api.log").open("ab")
            cmd = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out)]
            popen = subprocess.Popen(
                [*cmd, "-m", "jifen.redeem", "api"],
                env=stack.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
            stack.procs["redeem-api"] = Proc("redeem-api", stack.ports.redeem, popen)
        else:
            stack.start_process(s, k)
    for s, k in order:
        stack.wait_ready(stack.procs[f"{s}-{k}"])


def auth(stack: DevStack, role: str, subject: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(role, subject)}"}
