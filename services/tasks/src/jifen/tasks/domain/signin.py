"""Signing in with a phone number and a one-time code, the rules free of storage and HTTP.

A community app (the portal) asks for a code for a phone number; the code goes to that phone
through the organisation's sender, never to the app, so an app cannot sign anyone in without
the person's phone. The role a person acts in comes from the organisation's records
(``person``), never from the request. Codes are kept as hashes, live a few minutes, are used
once and allow a few wrong tries; a phone gets a new code at most every ``RESEND_SECONDS`` and
``CODES_PER_HOUR`` an hour, whether or not it is on record, so the answers do not tell which
numbers are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from jifen.kernel.errors import DomainRefusal

CODE_DIGITS = 6
CODE_TTL_SECONDS = 300
MAX_FAILURES = 5
RESEND_SECONDS = 30
CODES_PER_HOUR = 5
# a person's session token lives as long as any Jifen token by default
SESSION_TTL_SECONDS = 12 * 3600
# the roles a person may hold in an organisation's records (apps and operators are not people
# of the organisation: apps have credentials, operators run the processes)
PERSON_ROLES = ("volunteer", "officer", "merchant", "admin", "auditor")

_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"\+?[0-9]{6,15}")


class SigninRefusal(DomainRefusal):
    status = 401
    reason = "wrong_code"


class TooSoon(DomainRefusal):
    status = 429
    reason = "code_requested_too_often"


def normalise_phone(raw: str) -> str | None:
    """``+86 138-0000-0001`` → ``+8613800000001``; None if it is not a phone number."""
    phone = _SEPARATORS.sub("", raw)
    return phone if _PHONE.fullmatch(phone) else None


def mask(phone: str) -> str:
    """What a page may show of a number: ``138****0001``."""
    if len(phone) <= 7:
        return phone[:2] + "*" * (len(phone) - 2)
    return phone[:3] + "****" + phone[-4:]


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(org: str, phone: str, code: str) -> bytes:
    return hashlib.sha256(f"{org}\x00{phone}\x00{code}".encode()).digest()


def unguessable_hash() -> bytes:
    """Stored for a number not on record: no code matches it."""
    return secrets.token_bytes(32)


def matches(stored: bytes, org: str, phone: str, code: str) -> bool:
    return hmac.compare_digest(bytes(stored), code_hash(org, phone, code))


def message(code: str, org_name: str) -> str:
    """The text a phone receives, Chinese first."""
    minutes = CODE_TTL_SECONDS // 60
    return (
        f"【{org_name}】登录验证码 {code}，{minutes} 分钟内有效，请勿告诉他人。"
        f" Sign-in code {code}, valid {minutes} minutes; do not share it."
    )


def wrong_code(left: int) -> SigninRefusal:
    if left <= 0:
        return SigninRefusal(
            zh="验证码错误次数过多，已作废；请重新获取验证码",
            en="too many wrong codes: this code is void; ask for a new one",
            reason="code_void",
            attempts_left=0,
        )
    return SigninRefusal(
        zh=f"验证码不对或已过期，还可再试 {left} 次",
        en=f"wrong or expired code; {left} tries left",
        attempts_left=left,
    )


def no_live_code() -> SigninRefusal:
    return SigninRefusal(
        zh="验证码不对或已过期；请重新获取验证码",
        en="wrong or expired code; ask for a new one",
        reason="no_live_code",
    )


def too_soon(seconds: int) -> TooSoon:
    return TooSoon(
        zh=f"验证码请求太频繁，请 {seconds} 秒后再试",
        en=f"codes asked for too often; try again in {seconds} seconds",
        retry_after=seconds,
    )
