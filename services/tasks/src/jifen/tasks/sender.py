"""Where a sign-in code (or any text to a person's phone) goes: the pluggable sender.

``JIFEN_TASKS_SMS_SENDER=log`` (the embedded stack's default): the text is logged and kept in
``outbound_message``, which only an operator may read (``GET /v1/signin/messages``, the
portal's operator page) — no phone receives anything. ``http``: the text is POSTed as JSON
``{"to", "text", "org"}`` to ``JIFEN_TASKS_SMS_GATEWAY_URL`` (with ``Authorization: Bearer
$JIFEN_TASKS_SMS_GATEWAY_TOKEN`` when set), the shape a small adapter in front of a provider's
SMS API takes; a gateway that does not answer 2xx within 5 s is a 503 to the caller, and the
code is not kept."""

from __future__ import annotations

import logging
from typing import Protocol

import asyncpg
import httpx

from jifen.kernel.db import Queries
from jifen.tasks.settings import TasksSettings

log = logging.getLogger("jifen.sender")


class SenderUnavailable(Exception):
    pass


class Sender(Protocol):
    kind: str

    async def send(
        self, conn: asyncpg.Connection, q: Queries, *, org: str, to: str, text: str
    ) -> None: ...


class LogSender:
    kind = "log"

    async def send(
        self, conn: asyncpg.Connection, q: Queries, *, org: str, to: str, text: str
    ) -> None:
        log.info("短信 SMS (not sent: embedded sender) to %s: %s", to, text)
        await conn.execute(q["insert_outbound_message"], org, "sms", to, text)


class HttpSender:
    kind = "http"

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def send(
        self, conn: asyncpg.Connection, q: Queries, *, org: str, to: str, text: str
    ) -> None:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                r = await client.post(
                    self.url, json={"to": to, "text": text, "org": org}, headers=self.headers
                )
        except httpx.HTTPError as exc:
            raise SenderUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not r.is_success:
            raise SenderUnavailable(f"gateway answered {r.status_code}")


def make_sender(settings: TasksSettings) -> Sender:
    if settings.sms_sender == "http":
        if not settings.sms_gateway_url:
            raise ValueError("JIFEN_TASKS_SMS_SENDER=http needs JIFEN_TASKS_SMS_GATEWAY_URL")
        return HttpSender(settings.sms_gateway_url, settings.sms_gateway_token)
    return LogSender()
