"""The service processes parts 4 and 5 drive, and their bearer tokens."""

from __future__ import annotations

import subprocess
import sys

from jifen.devtools.devstack import SERVICES, DevStack, Proc
from jifen.kernel.settings import REPO_ROOT


def start_services(stack: DevStack, profile: bool = False) -> None:
    """The six service processes (not the signals app: it would replay every benchmark event).
    ``profile``: the redeem API runs under pyinstrument (redeem-api-profile.txt)."""
    for s in SERVICES:
        subprocess.run(
            [sys.executable, "-m", f"jifen.{s}", "migrate"],
            env=stack.env(),
            check=True,
            cwd=REPO_ROOT,
            capture_output=True,
        )
    order = [(s, k) for s in SERVICES for k in ("api", "worker")]
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
