"""Bearer tokens: Ed25519-signed JWTs naming a subject, a role and an organisation.

The stack generates a signing key on first run (under ``var/keys``, gitignored). Every key
ever used stays in ``public/`` so tokens signed before a rotation still verify until they
expire; the token header carries the key id (``kid``).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jifen.kernel.i18n import Said
from jifen.kernel.ratelimit import TokenBuckets, retry_after_header

ISSUER = "jifen"
DEFAULT_TTL_SECONDS = 12 * 3600
# The longest a token may live (exp - iat), whoever signed it: a leaked token is good for days,
# never for years (JIFEN_MAX_TOKEN_TTL_SECONDS; the development tokens of `make run` live 7 days)
MAX_TTL_SECONDS = 7 * 24 * 3600
# how many verified tokens a process remembers (TokenVerifier.verify), least recently used out
VERIFIED_TOKENS = 10_000
# what a subject and an organisation look like: the id pattern of the event schemas
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class Role(StrEnum):
    VOLUNTEER = "volunteer"
    OFFICER = "officer"
    APP = "app"
    MERCHANT = "merchant"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_ZH = {
    Role.VOLUNTEER: "志愿者",
    Role.OFFICER: "社区工作人员",
    Role.APP: "应用",
    Role.MERCHANT: "商户",
    Role.AUDITOR: "审计员",
    Role.OPERATOR: "运维",
    Role.ADMIN: "管理员",
}


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    org: str
    # set on tokens exchanged for an app credential (jifen.tasks.api.routes.credentials):
    # which one, and its limit
    credential: str | None = None
    writes_per_minute: int | None = None


class InvalidToken(Exception):
    pass


def _private_dir(keys_dir: Path) -> Path:
    return keys_dir / "signing"


def _public_dir(keys_dir: Path) -> Path:
    return keys_dir / "public"


def ensure_signing_key(keys_dir: Path) -> str:
    """Create a signing key if there is none; return the current key id."""
    current = keys_dir / "current"
    if current.exists():
        return current.read_text().strip()
    return rotate_signing_key(keys_dir)


def rotate_signing_key(keys_dir: Path) -> str:
    """Make a new signing key current; earlier public keys stay valid for verification."""
    _private_dir(keys_dir).mkdir(parents=True, exist_ok=True)
    _public_dir(keys_dir).mkdir(parents=True, exist_ok=True)
    os.chmod(_private_dir(keys_dir), 0o700)
    kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    key = Ed25519PrivateKey.generate()
    private = _private_dir(keys_dir) / f"{kid}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(private, 0o600)
    (_public_dir(keys_dir) / f"{kid}.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    tmp = keys_dir / "current.tmp"
    tmp.write_text(kid)
    tmp.replace(keys_dir / "current")
    return kid


# Deployments provision every key before the services start (`jifen keys init`, which leaves
# this file among them; mounted read-only). In a keys dir holding it, a key that is missing is
# an error at start, never a key made on the spot (each replica would sign with a key of its
# own that nobody published). Without it (`make run`, tests), the audit checkpoint key is made
# on first use as before.
PROVISIONED_MARK = "provisioned"
AUDIT_KEYS_SUBDIR = "audit"  # jifen.points.audit.keys keeps its keys there


def _key_set_problem(keys_dir: Path, what: str) -> str | None:
    current = keys_dir / "current"
    try:
        kid = current.read_text().strip()
    except FileNotFoundError:
        return f"no {what} in {keys_dir} ({current} is missing)"
    except OSError as exc:
        return f"cannot read the {what} in {keys_dir}: {exc.strerror} ({current})"
    if not kid:
        return f"no {what} in {keys_dir} ({current} is empty)"
    for part in (_private_dir(keys_dir) / f"{kid}.pem", _public_dir(keys_dir) / f"{kid}.pem"):
        try:
            part.read_bytes()
        except FileNotFoundError:
            return f"the {what} {kid} named by {current} is incomplete ({part} is missing)"
        except OSError as exc:
            return f"cannot read the {what} {kid}: {exc.strerror} ({part})"
    return None


def startup_key_problem(service: str, keys_dir: Path) -> str | None:
    """Why a process of ``service`` (its create_app name: tasks, points, points-worker, ...)
    cannot start with the keys in ``keys_dir``, in one line that says what to do; None if it
    can. Every HTTP process verifies (and the credential exchange issues) tokens; the points
    API publishes and the points worker signs audit checkpoints."""
    found = _key_set_problem(keys_dir, "token signing key")
    provisioned = (keys_dir / PROVISIONED_MARK).exists()
    if found is None and service.startswith("points") and provisioned:
        found = _key_set_problem(keys_dir / AUDIT_KEYS_SUBDIR, "audit checkpoint key")
    if found is None:
        return None
    return (
        f"jifen {service}: {found}. 缺少密钥 missing key: run `jifen keys init --keys-dir "
        f"{keys_dir}` (deploy/k8s/secrets.example.yaml for Kubernetes) and start again"
    )


def issue_token(
    keys_dir: Path,
    *,
    subject: str,
    role: Role | str,
    org: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    kid = ensure_signing_key(keys_dir)
    key = serialization.load_pem_private_key(
        (_private_dir(keys_dir) / f"{kid}.pem").read_bytes(), password=None
    )
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "role": Role(role).value,
        "org": org,
        "iat": now,
        "exp": now + ttl_seconds,
        **(extra_claims or {}),
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})  # type: ignore[arg-type]


class TokenVerifier:
    """Verifies tokens against every published key (re-read when an unknown kid appears)."""

    def __init__(self, keys_dir: Path, max_clock_skew_seconds: float | None = None) -> None:
        self.keys_dir = keys_dir
        # the issuer's clock may run ahead of ours: `iat`/`nbf` up to this far in the future
        # are accepted (JIFEN_MAX_CLOCK_SKEW_SECONDS); `exp` stays exact, never extended
        self.max_clock_skew_seconds = (
            max_clock_skew_seconds
            if max_clock_skew_seconds is not None
            else float(os.environ.get("JIFEN_MAX_CLOCK_SKEW_SECONDS", "300") or 300)
        )
        self.max_ttl_seconds = int(
            os.environ.get("JIFEN_MAX_TOKEN_TTL_SECONDS", MAX_TTL_SECONDS) or MAX_TTL_SECONDS
        )
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._pem: dict[str, bytes] = {}
        # token -> (principal, exp, kid, the key it verified with): see verify()
        self._verified: OrderedDict[str, tuple[Principal, float, str, Ed25519PublicKey]] = (
            OrderedDict()
        )
        self._load()

    def _load(self) -> None:
        for path in sorted(_public_dir(self.keys_dir).glob("*.pem")):
            pem = path.read_bytes()
            if self._pem.get(path.stem) == pem:
                continue  # the same key: the same object, so tokens it verified stay verified
            key = serialization.load_pem_public_key(pem)
            if isinstance(key, Ed25519PublicKey):
                self._keys[path.stem] = key
                self._pem[path.stem] = pem

    def verify(self, token: str) -> Principal:
        """The token's principal, or InvalidToken saying why not.

        A token verified once is remembered (up to VERIFIED_TOKENS of them, least recently
        used dropped first) for as long as it lives: its signature and claims do not change,
        and every check that passed stays passed as time goes on (``iat``/``nbf`` only fall
        further behind the clock, the lifetime left only shrinks). Checked again on every
        request: that it has not expired, and that its key id still names the very key it
        was verified with (a key file replaced under the same id is a new key: the token is
        verified again against it)."""
        hit = self._verified.get(token)
        if hit is not None:
            principal, exp, kid, key = hit
            if time.time() < exp and self._keys.get(kid) is key:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]  # expired (said below, as PyJWT says it) or re-keyed
        principal, exp, kid, key = self._verify(token)
        self._verified[token] = (principal, exp, kid, key)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float, str, Ed25519PublicKey]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id (kid)")
        if kid not in self._keys:
            self._load()
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken(f"unknown signing key {kid!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                issuer=ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "iss"],
                    "verify_iat": False,  # checked below, within the allowed clock skew
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        self._check_not_from_the_future(claims)
        self._check_lifetime(claims)
        for claim in ("sub", "org"):
            value = claims.get(claim)
            if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
                raise InvalidToken(
                    f"bad claims: {claim} must be a non-empty id ({ID_PATTERN.pattern}), "
                    f"got {value!r:.80}"
                )
        try:
            rl = claims.get("rl")
            if not isinstance(claims.get("role"), str):
                raise TypeError("role must be a string")
            principal = Principal(
                subject=claims["sub"],
                role=Role(claims["role"]),
                org=claims["org"],
                credential=str(claims["cred"]) if "cred" in claims else None,
                writes_per_minute=int(rl) if rl is not None else None,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidToken(f"bad claims: {exc}") from None
        return principal, float(claims["exp"]), kid, key

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        exp, iat = claims["exp"], claims["iat"]
        for name, value in (("exp", exp), ("iat", iat)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"{name} must be a number")
        if exp - iat > self.max_ttl_seconds or exp - time.time() > self.max_ttl_seconds:
            raise InvalidToken(
                f"token lives {(exp - iat) / 86400:.1f} days; at most "
                f"{self.max_ttl_seconds / 86400:g} days are accepted"
            )

    def _check_not_from_the_future(self, claims: dict[str, Any]) -> None:
        now = time.time()
        for claim in ("iat", "nbf"):
            value = claims.get(claim)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"{claim} must be a number")
            ahead = value - now
            if ahead > self.max_clock_skew_seconds:
                raise InvalidToken(
                    f"token {claim} is {ahead:.0f} s in the future, more than the allowed "
                    f"clock skew of {self.max_clock_skew_seconds:g} s"
                )


_bearer = HTTPBearer(auto_error=False, description="A Jifen token: `jifen token create`.")


def _unauthorized(detail: Said) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    return _principal_of_token(request, None if credentials is None else credentials.credentials)


def _principal_of_token(request: Request, token: str | None) -> Principal:
    if token is None:
        raise _unauthorized(Said("缺少 Bearer 令牌", "missing bearer token"))
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return verifier.verify(token)
    except InvalidToken as exc:
        raise _unauthorized(Said(f"令牌无效（{exc}）", f"invalid token: {exc}")) from None


def bearer_token(request: Request) -> str | None:
    """The Authorization header's bearer token, as :data:`_bearer` (``auto_error=False``)
    reads it: None when the header is missing, empty or of another scheme."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if not scheme or not token or scheme.lower() != "bearer":
        return None
    return token


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def authenticate(request: Request, credentials: Bearer) -> Principal:
    """A dependency: the caller's principal, any role (401 without a valid token)."""
    return _principal(request, credentials)


def require(*roles: Role) -> Any:
    """A dependency that admits only the given roles (403 for any other valid token).

    One dependency over the bearer scheme (not one over :func:`authenticate` over it): each
    layer FastAPI solves costs CPU on every request."""
    allowed = frozenset(roles)

    async def dependency(request: Request, credentials: Bearer) -> Principal:
        return admit(request, None if credentials is None else credentials.credentials, allowed)

    return Depends(dependency)


def admit(request: Request, token: str | None, allowed: frozenset[Role]) -> Principal:
    """The principal of ``token`` if its role is one of ``allowed`` and its writes are within
    their rate; else the 401, 403 or 429 :func:`require` answers (the one check, used by the
    dependency and by a fast lane, :mod:`jifen.kernel.lane`)."""
    principal = _principal_of_token(request, token)
    if principal.role not in allowed:
        names = sorted(allowed)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=Said(
                f"{ROLE_ZH[principal.role]}（{principal.role.value}）不能做这件事；可以做的是："
                + "、".join(f"{ROLE_ZH[r]}（{r.value}）" for r in names),
                f"role {principal.role.value!r} may not do this; allowed: "
                + ", ".join(r.value for r in names),
            ),
        )
    if request.method in WRITE_METHODS:
        _limit_writes(request, principal)
    return principal


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _limit_writes(request: Request, who: Principal) -> None:
    """429 with Retry-After when this caller's writes exceed its rate: an app credential's own
    ``writes_per_minute``, else ``JIFEN_WRITE_RATE_PER_MINUTE`` (unset or 0: no limit)."""
    per_minute = who.writes_per_minute
    if per_minute is None:
        per_minute = int(os.environ.get("JIFEN_WRITE_RATE_PER_MINUTE", "0") or 0)
    if per_minute <= 0:
        return
    buckets: TokenBuckets | None = getattr(request.app.state, "write_buckets", None)
    if buckets is None:
        buckets = request.app.state.write_buckets = TokenBuckets()
    key = f"{who.org}/{who.role.value}/{who.subject}/{who.credential or ''}"
    # a burst of ten seconds' worth, at least one
    wait = buckets.take(
        key, rate=per_minute / 60, burst=max(1, per_minute // 6), now=time.monotonic()
    )
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=Said(
                f"{who.subject} 每分钟写入超过 {per_minute} 次；请 {wait:.1f} 秒后再试",
                f"more than {per_minute} writes a minute from {who.subject}; retry in {wait:.1f} s",
            ),
            headers={"Retry-After": retry_after_header(wait)},
        )
