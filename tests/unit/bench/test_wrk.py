"""The bench's wrk plan files and the parser of the Lua script's BENCH-JSON line (bench/wrk.py)."""

from __future__ import annotations

import pytest
from bench.wrk import Line, command, parse_output, plan_text

OUT = """Running 5s test @ http://127.0.0.1:8003
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.00ms    3.00ms  80.00ms   90.00%
BENCH-JSON {"sent":600,"responses":600,"span_us":2500000,"statuses":{"201":90,"409":510},\
"errors":{"connect":0,"read":0,"write":0,"status":510,"timeout":0},\
"latency_us":{"p50":11000,"p90":20000,"p99":64000,"p999":79000,"max":80000,"mean":12000.0},\
"wrk_requests":632,"wrk_duration_us":5000000,"late":3,"late_us_sum":30000,"late_us_max":20000}
Requests/sec:    126.40
"""


def test_plan_lines_hold_method_path_token_and_compact_json() -> None:
    text = plan_text(
        [
            Line("POST", "/v1/redemptions", "tok", {"account_id": "a", "reward_id": "r"}),
            Line("GET", "/healthz"),
        ]
    )
    assert text == (
        'POST\t/v1/redemptions\ttok\t{"account_id":"a","reward_id":"r"}\nGET\t/healthz\t-\t-\n'
    )


def test_a_tab_in_a_field_is_refused_and_json_escapes_its_own() -> None:
    with pytest.raises(ValueError):
        plan_text([Line("POST", "/x", "t\tu")])
    assert plan_text([Line("POST", "/x", "t", {"k": "a\tb"})]).count("\t") == 3


def test_the_script_line_is_read_and_wrk_summary_ignored() -> None:
    r = parse_output(OUT)
    assert (r.sent, r.responses, r.seconds) == (600, 600, 2.5)
    assert r.rate == 240.0
    assert r.statuses == {201: 90, 409: 510} and r.count(200, 201) == 90
    assert (r.p50_ms, r.p99_ms, r.max_ms) == (11.0, 64.0, 80.0)
    assert (r.late, r.late_mean_ms, r.late_max_ms) == (3, 10.0, 20.0)
    assert r.errors["status"] == 510


def test_no_script_line_says_what_wrk_printed() -> None:
    with pytest.raises(ValueError, match="no BENCH-JSON"):
        parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_command_passes_the_script_its_arguments() -> None:
    cmd = command(
        "http://h:1", "/tmp/p.tsv", connections=1, threads=4, seconds=9, key_prefix="k", rate=50
    )
    assert cmd[:4] == ["wrk", "-t1", "-c1", "-d9s"]  # never more threads than connections
    assert cmd[cmd.index("--") + 1 :] == ["/tmp/p.tsv", "k", "1", "once", "50", ""]
