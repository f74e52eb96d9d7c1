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

import base64
import hashlib
import logging
import secrets
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from jifen.kernel.auth import Principal, Role, issue_token, require
from jifen.kernel.db import Queries
from jifen.kernel.ratelimit import retry_after_header
from jifen.kernel.web import Refusal, db_connection, max_body, problem

PREFIX = "jfa_"
TOKEN_TTL_SECONDS = 15 * 60
QUERIES_DIR = Path(__file__).with_name("queries")
EXCHANGE_MAX_FAILURES = 10
EXCHANGE_WINDOW_SECONDS = 300.0

log = logging.getLogger("jifen.credentials")


class FailureLog:
    """Failures per key within a sliding window, in process; pure (the clock is passed in)."""

    def __init__(self, *, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        d = self._failures.get(key)
        if d is None:
            return None
        while d and d[0] <= now - self.window:
            d.popleft()
        if not d:
            del self._failures[key]
            return None
        return d

    def wait(self, key: str, now: float) -> float:
        """0.0 if ``key`` may try now, else seconds until its oldest counted failure expires."""
        d = self._recent(key, now)
        if d is None or len(d) < self.limit:
            return 0.0
        return d[len(d) - self.limit] + self.window - now

    def fail(self, key: str, now: float) -> None:
        if key not in self._failures and len(self._failures) >= self._max_keys:
            for k in list(self._failures):
                self._recent(k, now)
            if len(self._failures) >= self._max_keys:  # still full: forget the oldest half
                for k in list(self._failures)[: len(self._failures) // 2]:
                    del self._failures[k]
        self._failures.setdefault(key, deque()).append(now)


def _exchange_failures(request: Request) -> FailureLog:
    f: FailureLog | None = getattr(request.app.state, "exchange_failures", None)
    if f is None:
        f = request.app.state.exchange_failures = FailureLog(
            limit=EXCHANGE_MAX_FAILURES, window=EXCHANGE_WINDOW_SECONDS
        )
    return f


def _too_many(wait: float) -> JSONResponse:
    seconds = retry_after_header(wait)
    response = problem(
        429,
        "Too Many Requests",
        f"凭证兑换失败次数过多，请 {seconds} 秒后再试 too many failed credential exchanges: "
        f"retry in {seconds} s",
        reason="too_many_attempts",
        retry_after=int(seconds),
    )
    response.headers["Retry-After"] = seconds
    return response


def new_secret() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class CredentialIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"app_id": "app-zhongbao", "writes_per_minute": 600}]},
    )
    app_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="The app's name, used as the subject of its tokens",
        examples=["app-zhongbao"],
    )
    writes_per_minute: int = Field(default=600, ge=1, le=60_000, strict=True)


class CredentialOut(BaseModel):
    id: uuid.UUID
    org_id: str
    app_id: str
    writes_per_minute: int
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedCredential(CredentialOut):
    secret: str = Field(description="Shown once; only its SHA-256 is stored")


class ExchangeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"credential": "jfa_" + "x" * 43}]},
    )
    credential: str = Field(min_length=8, max_length=200, pattern=r"^jfa_[A-Za-z0-9_-]+$")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int
    app_id: str
    org_id: str


# the kernel's: a connection lost after the answer never drops the client's connection
_conn = db_connection


def _queries(request: Request) -> Queries:
    q: Queries | None = getattr(request.app.state, "credential_queries", None)
    if q is None:
        q = request.app.state.credential_queries = Queries(QUERIES_DIR)
    return q


Conn = Annotated[Any, Depends(_conn)]
Q = Annotated[Queries, Depends(_queries)]
Admin = Annotated[Principal, require(Role.ADMIN)]


def credentials_router() -> APIRouter:
    """The endpoints; a service includes this router (it needs ``app.state.pool`` and the
    kernel's migrations, which every service applies)."""
    router = APIRouter(prefix="/v1/apps", tags=["app credentials"])

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
        response_model=list[CredentialOut],
        summary="Credentials of your organisation (never their secrets)",
    )
    async def list_credentials(
        conn: Conn, q: Q, who: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> list[CredentialOut]:
        rows = await conn.fetch(q["list_app_credentials"], who.org, limit)
        return [CredentialOut(**dict(r)) for r in rows]

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
                    f"credential {credential_id} was revoked before",
                    revoked_at=revoked_at.isoformat(),
                )
            raise HTTPException(404, f"no credential {credential_id} in organisation {who.org}")
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
    async def exchange(
        body: ExchangeIn, request: Request, conn: Conn, q: Q
    ) -> TokenOut | JSONResponse:
        failures = _exchange_failures(request)
        client = f"client:{request.client.host if request.client else 'unknown'}"
        now = time.monotonic()
        wait = failures.wait(client, now)
        if wait > 0:
            return _too_many(wait)
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
                401, "unknown or revoked app credential", headers={"WWW-Authenticate": "Bearer"}
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

    return router
