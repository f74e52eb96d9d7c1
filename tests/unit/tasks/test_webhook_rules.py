"""Webhook rules (issue 21, part 5): where a webhook may point, how a delivery is signed,
when a failed one is tried again."""

from __future__ import annotations

import random

import pytest

from jifen.tasks.domain.webhooks import (
    EVENT_TYPES,
    BadWebhook,
    check_event_types,
    check_url,
    retry_in,
    sign,
    verify,
)


def test_a_signature_covers_the_timestamp_and_the_body() -> None:
    good = sign("whsec_k", 1700000000, b'{"id":"e1"}')
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert verify("whsec_k", 1700000000, b'{"id":"e1"}', good)
    assert not verify("whsec_k", 1700000001, b'{"id":"e1"}', good)  # replayed with a new time
    assert not verify("whsec_k", 1700000000, b'{"id":"e2"}', good)  # another body
    assert not verify("whsec_other", 1700000000, b'{"id":"e1"}', good)


def test_retries_wait_longer_each_time_and_stop() -> None:
    rng = random.Random(7)
    waits = [retry_in(n, base=5, max_attempts=6, rng=rng) for n in range(1, 7)]
    assert waits[-1] is None  # the sixth failed try is the last
    tried = [w for w in waits if w is not None]
    assert all(0.8 * 5 * 2**i <= w <= 1.2 * 5 * 2**i for i, w in enumerate(tried))
    assert retry_in(30, base=5, max_attempts=50, rng=rng) <= 3600 * 1.2  # type: ignore[operator]


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example.cn/hook",  # not https
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",  # the cloud's metadata address
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://db.internal/hook",
        "https://user:pw@app.example.cn/hook",
        "ftp://app.example.cn/hook",
    ],
)
def test_a_webhook_may_not_point_into_the_services_own_network(url: str) -> None:
    with pytest.raises(BadWebhook) as refused:
        check_url(url, [])
    assert refused.value.status == 422 and refused.value.zh


def test_public_https_and_the_allowed_hosts_pass() -> None:
    assert check_url("https://app.example.cn/hook", []) == "https://app.example.cn/hook"
    assert check_url("https://8.8.8.8/hook", []) == "https://8.8.8.8/hook"
    assert check_url("http://127.0.0.1:8123/hook", ["127.0.0.1"]) == "http://127.0.0.1:8123/hook"


def test_only_the_events_the_service_publishes_may_be_chosen() -> None:
    assert check_event_types([EVENT_TYPES[0], EVENT_TYPES[0]]) == [EVENT_TYPES[0]]
    for bad in ([], ["jifen.points.entry.appended.v1"]):
        with pytest.raises(BadWebhook):
            check_event_types(bad)


@pytest.mark.parametrize("url", ["http://[", "https://[::1", "https://a b/", "https://%zz/x"])
def test_a_url_that_is_no_address_is_refused_not_a_crash(url: str) -> None:
    with pytest.raises(BadWebhook):
        check_url(url, [])
