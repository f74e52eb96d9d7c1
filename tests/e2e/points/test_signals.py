"""Live integrity signals (the faust worker): a burst of completions by one volunteer raises
the matching flag within seconds, and the counts survive a SIGKILL of the signals worker."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from jifen.devtools.devstack import DevStack
from jifen.kernel.metrics import SCRAPE_TOKEN_FILE
from tests.e2e.test_typical_journey import earn
from tests.helpers import Api, eventually

pytestmark = pytest.mark.e2e
BURST = 14  # > 2 × the hourly threshold of 6, so an hour boundary cannot hide it


async def test_a_burst_by_one_volunteer_is_flagged_and_counted_once(
    services: DevStack, apis: dict[str, Api]
) -> None:
    tasks, points = apis["tasks"], apis["points"]
    account = f"vol-burst-{uuid.uuid4().hex[:6]}"
    for _ in range(BURST):
        await earn(tasks, account, 3)

    async def flagged() -> list[dict[str, Any]]:
        r = await points.http.get("/v1/signals", headers=points.auth("auditor"))
        assert r.status_code == 200, r.text
        return [
            f
            for f in r.json()["flags"]
            if f["signal"] == "volunteer_completions_per_hour" and f["subject"] == account
        ]

    flags = await eventually(flagged, timeout=30, what="the hourly-completions flag")
    assert max(f["value"] for f in flags) > 6

    signals_url = f"http://127.0.0.1:{services.ports.points_signals}"
    # the flags per organisation are behind the scrape credential, as Prometheus reads them
    token = (services.keys_dir / SCRAPE_TOKEN_FILE).read_text().strip()
    scraper = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10, headers=scraper) as http:

        async def gauge() -> float | None:
            text = (await http.get(f"{signals_url}/metrics")).text
            for line in text.splitlines():
                if (
                    line.startswith("jifen_points_signal_flags{")
                    and 'signal="volunteer_completions_per_hour"' in line
                ):
                    value = float(line.rsplit(" ", 1)[1])
                    return value if value >= 1 else None
            return None

        assert await eventually(gauge, timeout=15, what="the flags gauge") >= 1

    # SIGKILL the signals worker; redelivered events must not be counted twice after restart
    services.stop_process("points-signals", signal.SIGKILL)
    services.wait_ready(services.start_process("points", "signals"))
    await earn(tasks, account, 3)
    conn = await asyncpg.connect(services.owner_dsn("points"))
    try:

        async def counted() -> int | None:
            n = await conn.fetchval(
                "SELECT sum(count) FROM signal_tally WHERE signal = $1 AND subject = $2",
                "volunteer_completions_per_hour",
                account,
            )
            return n if n == BURST + 1 else None

        assert await eventually(counted, timeout=45, what="the new completion tallied") == BURST + 1
    finally:
        await conn.close()
