"""The portal against the session's real stack: the demo people on record, the portal process
started with an app credential its admin issued, and Debian's Chromium driven by Playwright
(no browser is downloaded). Screenshots go to ``results/portal/`` (kept as CI artefacts)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from jifen.devtools.demo import seed_people
from jifen.devtools.devstack import DevStack
from jifen.kernel.settings import REPO_ROOT

SHOTS = REPO_ROOT / "results" / "portal"


@pytest.fixture(scope="session")
def portal(services: DevStack) -> str:
    seed_people(services)
    if "portal-api" not in services.procs:
        services.start_portal()
    return services.url("portal")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is not installed: `make system` installs it"
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
