"""Swagger UI (/docs) and ReDoc (/redoc) work with no network beyond the service itself: their
scripts and styles are served by the process (``fastapi-offline``'s copies), and a real
browser (Debian's Chromium, headless) renders the API's own title from its OpenAPI document."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from jifen.devtools.stack import free_port, port_open
from jifen.kernel.web import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TITLE = "积分任务 Jifen tasks — docs test"


@pytest.fixture(scope="module")
def docs_url() -> Iterator[str]:
    app = create_app(
        service="docs-test", title=TITLE, description="认领与完成 claims and completions"
    )

    @app.get("/v1/jobs/{job_id}", summary="读取任务 Read one job")
    async def job(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert port_open(port), "the test server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def external_urls(html: str) -> list[str]:
    """Every src/href that leaves this host."""
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    return [u for u in urls if re.match(r"(https?:)?//", u) and "127.0.0.1" not in u]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_use_only_assets_this_process_serves(docs_url: str, page: str) -> None:
    html = httpx.get(docs_url + page, timeout=10).text
    assert not external_urls(html), external_urls(html)
    assets = re.findall(r"""(?:src|href)\s*=\s*["'](/docs-assets/[^"']+)["']""", html)
    assert assets, html[:500]
    for asset in assets:
        r = httpx.get(docs_url + asset, timeout=10)
        assert r.status_code == 200, asset
        assert len(r.content) > 1000, asset  # the real bundle, not a placeholder


def dump_dom(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # no way out but to this host: a page that needs a CDN stays blank
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing (Debian: apt-get install chromium)")
@pytest.mark.timeout(400)
def test_swagger_ui_and_redoc_render_the_api_in_chromium_offline(
    docs_url: str, tmp_path: Path
) -> None:
    swagger = dump_dom(docs_url + "/docs", tmp_path / "swagger")
    # Swagger UI drew the document: its title block and the operation, not just <title>
    body = swagger[swagger.find("<body") :]
    assert 'class="swagger-ui' in body, body[:2000]
    assert TITLE in body and "/v1/jobs/{job_id}" in body, body[:3000]
    assert "读取任务 Read one job" in body

    redoc = dump_dom(docs_url + "/redoc", tmp_path / "redoc")
    body = redoc[redoc.find("<body") :]
    assert re.search(r"<h1[^>]*>\s*" + re.escape(TITLE), body), body[:3000]
    assert "读取任务 Read one job" in body
