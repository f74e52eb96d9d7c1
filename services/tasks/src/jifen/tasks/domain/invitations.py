"""Invitation links from an officer, the rules free of storage and HTTP.

An officer or admin of an organisation invites a person already on its records (``person``);
the link carries a random token, shown once to the issuer and stored only as its SHA-256. The
community app exchanges the token for the same sessions a phone code gives (one per role the
records hold for that number *at the exchange*, never a role named by the invitation). A token
lives ``TTL_SECONDS``, is used once and can be revoked before it is used.

An invitation never carries more power than its issuer: an officer may invite only a person
whose every recorded role is volunteer or merchant, an admin also officers. Admins and
auditors sign in with their phone's code only, so nobody can hand themselves an admin's or an
auditor's sessions (a second admin's approval, an independent auditor) by inviting them. The
ceiling is checked again at the exchange, since the records may have changed in between. The
number gets a text when its link is used, naming the issuer: whoever holds a live link signs
in, so an issuer who kept one and used it is found out by the person it named.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from jifen.kernel.errors import DomainRefusal

TTL_SECONDS = 7 * 24 * 3600  # a week: long enough to reach a rider between shifts
TOKEN_BYTES = 32  # 256 random bits: guessing one is hopeless, so no guess counter is kept
# the roles whose holders each issuer may invite
INVITABLE = {
    "officer": frozenset({"volunteer", "merchant"}),
    "admin": frozenset({"volunteer", "merchant", "officer"}),
}

# whose id an invitation by phone is listed under, when the number holds several roles
NAMED_FIRST = ("volunteer", "merchant", "officer")


class InvitationRefused(DomainRefusal):
    """The token was presented but gives no sessions: ``reason`` says why."""

    status = 410
    reason = "invitation_used"


class NotRevocable(DomainRefusal):
    reason = "invitation_used"


class UnknownInvitation(DomainRefusal):
    status = 401
    reason = "invitation_unknown"


class BeyondIssuer(DomainRefusal):
    status = 403
    reason = "invitation_beyond_issuer"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_ceiling(issuer_role: str, roles: Iterable[str]) -> None:
    """Refuse an invitation whose person holds a role beyond what ``issuer_role`` may hand out."""
    allowed = INVITABLE.get(issuer_role, frozenset())
    beyond = sorted(set(roles) - allowed)
    if beyond:
        names = "、".join(beyond)
        raise BeyondIssuer(
            zh=f"这个人在记录中还担任 {names}；{issuer_role} 只能邀请 "
            f"{'、'.join(sorted(allowed))}，其他角色请用手机验证码登录",
            en=f"this person also holds {', '.join(beyond)} on the records; an {issuer_role} "
            f"may invite only {', '.join(sorted(allowed))} — other roles sign in with their "
            "phone's code",
            roles=beyond,
        )


def unknown() -> UnknownInvitation:
    return UnknownInvitation(
        zh="邀请链接无效：请向社区干部要一个新的链接",
        en="this invitation link is not valid: ask an officer for a new one",
    )


def why_not(used_at: datetime | None, revoked_at: datetime | None, expired: bool) -> DomainRefusal:
    """Why a known token gives no sessions (the first that holds: used, revoked, expired)."""
    if used_at is not None:
        return InvitationRefused(
            zh="这个邀请链接已经用过了；每个链接只能用一次，请向社区干部要一个新的",
            en="this invitation link was already used; a link works once — ask an officer "
            "for a new one",
            reason="invitation_used",
        )
    if revoked_at is not None:
        return InvitationRefused(
            zh="这个邀请链接已被撤销；请向社区干部要一个新的",
            en="this invitation link was revoked; ask an officer for a new one",
            reason="invitation_revoked",
        )
    if expired:
        return InvitationRefused(
            zh=f"这个邀请链接已过期（有效 {TTL_SECONDS // 86400} 天）；请向社区干部要一个新的",
            en=f"this invitation link has expired (links last {TTL_SECONDS // 86400} days); "
            "ask an officer for a new one",
            reason="invitation_expired",
        )
    return unknown()


def not_revocable() -> NotRevocable:
    return NotRevocable(
        zh="这个邀请链接已经用过了，无法撤销",
        en="this invitation was already used; nothing to revoke",
    )


def signed_in_message(org_name: str, issued_by: str) -> str:
    """The text the invited number receives once the link is used: whoever used it, the person
    learns of it (an issuer who kept the link and signed in with it is found out)."""
    return (
        f"【{org_name}】您的账号刚刚通过 {issued_by} 发出的邀请链接登录。如果不是您本人，"
        "请立即告诉社区。"
        f" Your account just signed in with an invitation link from {issued_by}; if that was "
        "not you, tell your community now."
    )
