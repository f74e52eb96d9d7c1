"""bench/wrk/plan.lua run by the real wrk against a tiny local server: every plan line is sent
once with its token and body, every request has its own Idempotency-Key, the run ends as soon
as the last answer is in, and the open loop keeps to its rate. Skipped where wrk is missing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bench import wrk

pytestmark = pytest.mark.skipif(not wrk.available(), reason="wrk not installed (make system)")


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, str, str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, code: int) -> None:
        body = b"{}"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n).decode()
        self.seen.append(
            (
                self.path,
                self.headers.get("Authorization", ""),
                self.headers.get("Idempotency-Key", ""),
                body,
                self.headers.get("Content-Type", ""),
            )
        )
        self._answer(201)

    def do_GET(self) -> None:
        self._answer(404)


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_each_line_once_with_its_token_body_and_a_fresh_key(server: str) -> None:
    lines = [wrk.Line("POST", f"/v1/x/{i}", f"tok{i}", {"account_id": f"a{i}"}) for i in range(40)]
    t = time.monotonic()
    res = wrk.run(server, lines, connections=8, threads=2, seconds=30, key_prefix="kp")
    assert time.monotonic() - t < 15  # ended when the last answer was in, not after -d
    # no filler request once the plan is sent: nothing but the plan is timed
    assert res.sent == res.responses == 40 and res.statuses == {201: 40}
    got = sorted(Recorder.seen)
    assert [(p, a, json.loads(b)) for p, a, _, b, _ in got] == sorted(
        (f"/v1/x/{i}", f"Bearer tok{i}", {"account_id": f"a{i}"}) for i in range(40)
    )
    keys = [k for _, _, k, _, _ in got]
    assert len(set(keys)) == 40 and all(k.startswith("kp-") for k in keys)
    assert {c for *_, c in got} == {"application/json"}


def test_the_open_loop_keeps_to_its_rate(server: str) -> None:
    lines = [wrk.Line("POST", "/v1/x", "t", {"n": i}) for i in range(30)]
    # more connections than a slot needs: the idle ones wait, none sends a line twice
    res = wrk.run(server, lines, connections=8, threads=2, seconds=30, key_prefix="o", rate=20)
    assert res.responses == 30 and res.statuses == {201: 30}
    # 30 requests at 20/s: about 1.5 s from the first send to the last answer
    assert 1.2 <= res.seconds <= 6
