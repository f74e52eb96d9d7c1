"""/v1/webhooks: apps subscribe to the organisation's events, signed and retried (issue 21)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request

from jifen.kernel.auth import Principal, Role
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.web import ParsedBodyRoute, max_body
from jifen.tasks.api.deps import REFUSALS, Conn, Q, Subscriber
from jifen.tasks.api.schemas.webhooks import DeliveryOut, WebhookCreated, WebhookIn, WebhookOut
from jifen.tasks.domain.webhooks import check_event_types, check_url, new_secret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=ParsedBodyRoute)


def _mine(who: Principal) -> str | None:
    """An app sees and ends only the webhooks it made; the admin all of the organisation's."""
    return who.subject if who.role == Role.APP else None


def _no_webhook(webhook_id: uuid.UUID) -> NotFound:
    return NotFound(Said(f"没有网络回调 {webhook_id}", f"no webhook {webhook_id}"))


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Subscribe to events of your organisation (app, admin)",
    description="Each event of a chosen type is POSTed to the url as the CloudEvent JSON the "
    "service published, with X-Jifen-Event-Id, X-Jifen-Event-Type, X-Jifen-Delivery, "
    "X-Jifen-Timestamp and X-Jifen-Signature (sha256 HMAC of '<timestamp>.<body>' with the "
    "secret shown once here). A 2xx answer is a delivery; anything else is tried again with "
    "backoff, each try in the delivery log. An event published again is delivered once.",
    responses=REFUSALS,
    openapi_extra=max_body(4096),
)
async def add_webhook(
    body: WebhookIn, request: Request, conn: Conn, q: Q, who: Subscriber
) -> WebhookCreated:
    settings = request.app.state.settings
    allowed = [h.strip() for h in settings.webhook_allowed_hosts.split(",") if h.strip()]
    url = check_url(body.url, allowed)
    types = check_event_types(body.event_types)
    secret = new_secret()
    row = await conn.fetchrow(
        q["insert_webhook"], uuid.uuid4(), who.org, url, types, secret, who.subject
    )
    return WebhookCreated(**dict(row))


@router.get(
    "", response_model=Page[WebhookOut], summary="Your webhooks (an app's own; the admin's all)"
)
async def list_webhooks(conn: Conn, q: Q, who: Subscriber, paging: Paging) -> Page[WebhookOut]:
    rows = await conn.fetch(
        q["list_webhooks"], who.org, _mine(who), *paging.after(datetime, uuid.UUID), paging.fetch
    )
    return paging.page(rows, lambda r: (r["created_at"], r["id"]), lambda r: WebhookOut(**dict(r)))


@router.delete(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="End a webhook: nothing more is sent to it (its log is kept)",
)
async def end_webhook(webhook_id: uuid.UUID, conn: Conn, q: Q, who: Subscriber) -> WebhookOut:
    row = await conn.fetchrow(q["disable_webhook"], webhook_id, who.org, _mine(who), who.subject)
    if row is None:
        raise _no_webhook(webhook_id)
    return WebhookOut(**dict(row))


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="A webhook's delivery log, newest first",
)
async def deliveries(
    webhook_id: uuid.UUID,
    conn: Conn,
    q: Q,
    who: Subscriber,
    paging: Paging,
) -> Page[DeliveryOut]:
    if await conn.fetchrow(q["get_webhook"], webhook_id, who.org, _mine(who)) is None:
        raise _no_webhook(webhook_id)
    rows = await conn.fetch(q["list_deliveries"], webhook_id, paging.fetch, *paging.after(int))
    # log: jsonb, decoded by the pool's codec
    return paging.page(rows, lambda r: (r["id"],), lambda r: DeliveryOut(**dict(r)))
