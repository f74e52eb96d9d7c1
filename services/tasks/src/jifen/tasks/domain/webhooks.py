"""Signed webhooks (issue 21, part 5): which events an app may subscribe to, where a webhook
may point, how a delivery is signed, and when a failed one is tried again. Pure."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from jifen.kernel.i18n import Said
from jifen.tasks.domain.jobs import TasksRefusal

# what the tasks service publishes (its outbox): a new job or a month's menu, a claim or any
# other item's status change, a completion verified or revoked
EVENT_TYPES = (
    "jifen.tasks.job.published.v1",
    "jifen.tasks.item.status_changed.v1",
    "jifen.tasks.completion.verified.v1",
    "jifen.tasks.completion.revoked.v1",
)
SIGNATURE_HEADER = "X-Jifen-Signature"
TIMESTAMP_HEADER = "X-Jifen-Timestamp"


class BadWebhook(TasksRefusal):
    reason = "bad_webhook"
    status = 422


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>.<body>"): the receiver recomputes
    it with its secret and refuses a timestamp far from its clock (a replayed delivery)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_in(
    attempt: int, *, base: float, max_attempts: int, rng: random.Random | None = None
) -> float | None:
    """Seconds before the next try after ``attempt`` failed tries (1, 2, …): base, 2×, 4×…
    capped at an hour, ±20 %; None once ``max_attempts`` have failed (the delivery fails)."""
    if attempt >= max_attempts:
        return None
    delay: float = min(base * 2.0 ** (attempt - 1), 3600.0)
    spread: float = (rng or random.Random()).uniform(0.8, 1.2)
    return delay * spread


def check_url(url: str, allowed_hosts: Iterable[str]) -> str:
    """A webhook posts to https on a public address; a host in ``allowed_hosts``
    (``JIFEN_TASKS_WEBHOOK_ALLOWED_HOSTS``: the embedded stack's receivers, a gateway on the
    private network) may also take http or a private address. Anything else is refused: a
    webhook must not make this service call into its own network."""
    allowed = {h.lower() for h in allowed_hosts}
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # "http://[" and the like: not an address at all
        host, parts = "", urlsplit("")
    if (
        parts.scheme not in ("https", "http")
        or not host
        or parts.username
        or parts.password
        or not all(c.isalnum() or c in ".-:[]" for c in host)
    ):
        raise BadWebhook(
            Said(
                "url 应为 https:// 开头、不含用户名密码的网址",
                "url must be an https:// address with no user or password",
            )
        )
    if host in allowed:
        return url
    if parts.scheme != "https":
        raise BadWebhook(Said("url 必须用 https", "url must use https"), host=host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise BadWebhook(
                Said(f"不能发往内部主机 {host}", f"url may not point at the internal host {host}"),
                host=host,
            ) from None
        return url
    if not address.is_global:
        raise BadWebhook(
            Said(
                f"不能发往非公网地址 {host}", f"url may not point at the non-public address {host}"
            ),
            host=host,
        )
    return url


def check_event_types(types: Iterable[str]) -> list[str]:
    chosen = sorted(set(types))
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown or not chosen:
        raise BadWebhook(
            Said(
                f"不认识的事件类型：{', '.join(unknown) or '（未选择）'}",
                f"unknown event types: {', '.join(unknown) or '(none chosen)'}",
            ),
            known=list(EVENT_TYPES),
        )
    return chosen
