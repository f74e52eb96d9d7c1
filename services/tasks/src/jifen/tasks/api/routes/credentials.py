"""Community app credentials: issued per app by an organisation's admin, stored only as a
SHA-256 hash, revocable, and exchanged by the app for a short-lived bearer token.

The secret is 32 random bytes (``jfa_`` + base64url), shown once at issue. At that entropy a
plain SHA-256 is as strong as a slow password hash and costs nothing per exchange. The token an
app gets back is an ordinary Jifen token (role ``app``, the app id as subject, the
credential's organisation) that also names the credential (``cred``) and its write limit
(``rl``, writes a minute), so every service limits it without a shared store. Revoking stops
new exchanges at once; a token already issued lives out its short TTL (15 minutes).

Exchanging is attempt-limited: after ``EXCHANGE_MAX_FAILURES`` failed exchanges within
``EXCHANGE_WINDOW_SECONDS`` from one client address, every exchange from it (a right secret
too) gets 429 with Retry-After until the oldest failure leaves the window; a revoked
credential presented again and again is logged. The count is kept per process, like the write
limits, and keyed by the peer address (behind a reverse proxy: the proxy's, so the proxy must
limit too). A guess at a 256-bit secret is hopeless anyway; the limit keeps noise and load off
the database and makes a guesser visible.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from jifen.kernel.auth import Role, issue_token
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.pages import Page, Paging
from jifen.kernel.ratelimit import retry_after_header
from jifen.kernel.web import ParsedBodyRoute, Refusal, max_body, said
from jifen.tasks.api.deps import Admin, Conn, Q
from jifen.tasks.api.schemas.credentials import (
    CredentialIn,
    CredentialOut,
    ExchangeIn,
    IssuedCredential,
    TokenOut,
)
from jifen.tasks.domain.credentials import (
    EXCHANGE_MAX_FAILURES,
    EXCHANGE_WINDOW_SECONDS,
    TOKEN_TTL_SECONDS,
    FailureLog,
    new_secret,
    secret_hash,
)

log = logging.getLogger("jifen.credentials")

# community apps' credentials live in tasks, where apps post; the tokens work on every service
router = APIRouter(prefix="/v1/apps", tags=["app credentials"], route_class=ParsedBodyRoute)


def _exchange_failures(request: Request) -> FailureLog:
    f: FailureLog | None = getattr(request.app.state, "exchange_failures", None)
    if f is None:
        f = request.app.state.exchange_failures = FailureLog(
            limit=EXCHANGE_MAX_FAILURES, window=EXCHANGE_WINDOW_SECONDS
        )
    return f


def _too_many(request: Request, wait: float) -> JSONResponse:
    seconds = retry_after_header(wait)
    response = said(
        request,
        429,
        f"凭证兑换失败次数过多，请 {seconds} 秒后再试",
        f"too many failed credential exchanges: retry in {seconds} s",
        reason="too_many_attempts",
        retry_after=int(seconds),
    )
    response.headers["Retry-After"] = seconds
    return response


@router.post(
    "/credentials",
    openapi_extra=max_body(4096),
    status_code=201,
    response_model=IssuedCredential,
    summary="Issue a credential to a community app (admin; the secret is shown once)",
)
async def issue(body: CredentialIn, conn: Conn, q: Q, who: Admin) -> IssuedCredential:
    secret = new_secret()
    row = await conn.fetchrow(
        q["insert_app_credential"],
        uuid.uuid4(),
        who.org,
        body.app_id,
        secret_hash(secret),
        body.writes_per_minute,
        who.subject,
    )
    return IssuedCredential(**dict(row), secret=secret)


@router.get(
    "/credentials",
    response_model=Page[CredentialOut],
    summary="Credentials of your organisation, newest first (never their secrets)",
)
async def list_credentials(conn: Conn, q: Q, who: Admin, paging: Paging) -> Page[CredentialOut]:
    rows = await conn.fetch(
        q["list_app_credentials"], who.org, paging.fetch, *paging.after(datetime, uuid.UUID)
    )
    return paging.page(
        rows, lambda r: (r["created_at"], r["id"]), lambda r: CredentialOut(**dict(r))
    )


@router.post(
    "/credentials/{credential_id}/revoke",
    openapi_extra=max_body(1024),
    response_model=CredentialOut,
    summary="Revoke a credential: no new tokens from it (admin)",
    responses={
        404: {"description": "No such credential in your organisation"},
        409: {"description": "`already_revoked`: revoked before (when: `revoked_at`)"},
    },
)
async def revoke(
    credential_id: Annotated[uuid.UUID, PathParam()], conn: Conn, q: Q, who: Admin
) -> CredentialOut:
    row = await conn.fetchrow(q["revoke_app_credential"], credential_id, who.org, who.subject)
    if row is None:
        revoked_at = await conn.fetchval(q["app_credential_revoked_at"], credential_id, who.org)
        if revoked_at is not None:
            raise Refusal(
                "already_revoked",
                Said(
                    f"凭据 {credential_id} 此前已被吊销",
                    f"credential {credential_id} was revoked before",
                ),
                revoked_at=revoked_at.isoformat(),
            )
        raise NotFound(
            Said(
                f"组织 {who.org} 没有凭据 {credential_id}",
                f"no credential {credential_id} in organisation {who.org}",
            )
        )
    return CredentialOut(**dict(row))


@router.post(
    "/token",
    openapi_extra=max_body(1024),
    response_model=TokenOut,
    summary="Exchange an app credential for a short-lived bearer token",
    responses={
        401: {"description": "Unknown or revoked credential"},
        429: {
            "description": "`too_many_attempts`: too many failed exchanges from this "
            "client lately; see Retry-After"
        },
    },
)
async def exchange(body: ExchangeIn, request: Request, conn: Conn, q: Q) -> TokenOut | JSONResponse:
    failures = _exchange_failures(request)
    client = f"client:{request.client.host if request.client else 'unknown'}"
    now = time.monotonic()
    wait = failures.wait(client, now)
    if wait > 0:
        return _too_many(request, wait)
    row = await conn.fetchrow(q["app_credential_by_secret"], secret_hash(body.credential))
    if row is None or row["revoked_at"] is not None:
        failures.fail(client, now)
        if row is not None:
            credential = f"credential:{row['id']}"
            failures.fail(credential, now)
            if failures.wait(credential, now) > 0:
                log.warning("revoked app credential %s keeps being presented", row["id"])
        # one answer for both, so a guess learns nothing about which credentials exist
        raise HTTPException(
            401,
            Said("应用凭据不存在或已吊销", "unknown or revoked app credential"),
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = issue_token(
        request.app.state.settings.keys_dir,
        subject=row["app_id"],
        role=Role.APP,
        org=row["org_id"],
        ttl_seconds=TOKEN_TTL_SECONDS,
        extra_claims={"cred": str(row["id"]), "rl": row["writes_per_minute"]},
    )
    return TokenOut(
        access_token=token,
        expires_in=TOKEN_TTL_SECONDS,
        app_id=row["app_id"],
        org_id=row["org_id"],
    )
