"""Needs × resources and community partners (issue 21, part 4): who may post what, which
resource may serve which need, and the rules of a partner's menu item. Pure: the handlers
fetch and store.

The needs list (需求清单) holds wishes — from door-to-door visits, officers, or residents and
gig workers themselves; the resources list (资源清单) holds offers from partners (社区合伙人:
agencies, firms, merchants, skilled residents). An officer is shown the proposed matches —
same category, then same community, overlapping times and the same place count for more —
and turns the ones chosen into the month's menu."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from jifen.kernel.i18n import Said
from jifen.tasks.domain.intake import NeedKind, NeedStatus
from jifen.tasks.domain.jobs import TasksRefusal


class PartnerKind(StrEnum):
    ORGANISATION = "organisation"  # an agency, a firm, a merchant
    TEAM = "team"  # skilled residents, a rider team


class NeedSource(StrEnum):
    VISIT = "visit"  # found on a door-to-door visit (入户走访)
    OFFICER = "officer"  # an officer's own
    RESIDENT = "resident"  # a resident or a gig worker, themselves or through their app
    PARTNER = "partner"  # a partner's offer


class NotYours(TasksRefusal):
    reason = "not_yours"
    status = 403


class NotPartnerMember(TasksRefusal):
    reason = "not_partner_member"


class PartnerTaken(TasksRefusal):
    reason = "partner_taken"


class PartnerExists(TasksRefusal):
    reason = "partner_exists"


class NotMatchable(TasksRefusal):
    reason = "not_matchable"


class UnknownPartner(TasksRefusal):
    reason = "unknown_partner"


# what each role (the token's role, by name) may post, and where it comes from when it does
# not say
_POSTS: dict[str, tuple[set[NeedKind], set[NeedSource], NeedSource]] = {
    "officer": (set(NeedKind), set(NeedSource), NeedSource.OFFICER),
    "admin": (set(NeedKind), set(NeedSource), NeedSource.OFFICER),
    "app": (set(NeedKind), {NeedSource.RESIDENT, NeedSource.PARTNER}, NeedSource.RESIDENT),
    "volunteer": ({NeedKind.WISH}, {NeedSource.RESIDENT}, NeedSource.RESIDENT),
    "merchant": ({NeedKind.OFFER}, {NeedSource.PARTNER}, NeedSource.PARTNER),
}


def source_of(role: str, kind: NeedKind, asked: NeedSource | None) -> NeedSource:
    """Where a posted wish or offer comes from: a resident or gig worker posts only their own
    wish, a merchant only its own offer; an officer may record a visit's. 403 otherwise."""
    kinds, sources, default = _POSTS[role]
    if kind not in kinds:
        raise NotYours(
            Said(
                f"{role} 不能发布 {kind.value}（可以：{'、'.join(sorted(kinds))}）",
                f"a {role} may not post a {kind.value} (may: {', '.join(sorted(kinds))})",
            )
        )
    source = asked or default
    if source not in sources:
        raise NotYours(
            Said(
                f"{role} 不能以来源 {source.value} 发布",
                f"a {role} may not post with source {source.value}",
            )
        )
    return source


@dataclass(frozen=True)
class Item:
    """A wish or an offer as the matching sees it."""

    id: UUID
    kind: NeedKind
    community_id: str
    category: str | None
    place: str
    wanted_from: datetime | None
    wanted_until: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Match:
    need: Item
    resource: Item
    score: int
    reasons: tuple[str, ...]  # codes, in REASONS


REASONS: dict[str, tuple[str, str]] = {
    "same_category": ("同一类别", "the same category"),
    "same_community": ("同一社区", "the same community"),
    "times_overlap": ("时间重合", "their times overlap"),
    "same_place": ("同一地点", "the same place"),
}


WEIGHTS = {"same_category": 2, "same_community": 2, "times_overlap": 1, "same_place": 1}


def _overlap(a: Item, b: Item) -> bool | None:
    """True or False when both say when; None when either does not."""
    if None in (a.wanted_from, a.wanted_until, b.wanted_from, b.wanted_until):
        return None
    assert a.wanted_from and a.wanted_until and b.wanted_from and b.wanted_until
    return a.wanted_from < b.wanted_until and b.wanted_from < a.wanted_until


def propose(needs: Iterable[Item], resources: Sequence[Item]) -> list[Match]:
    """Every (need, resource) of one category whose times do not exclude each other, best
    first: the same community +2, times that overlap +1, the same place +1 (on top of the
    category's 2). A need or resource with no category matches nothing."""
    out: list[Match] = []
    for n in needs:
        if n.kind is not NeedKind.WISH or n.category is None:
            continue
        for r in resources:
            if r.kind is not NeedKind.OFFER or r.category != n.category:
                continue
            overlap = _overlap(n, r)
            if overlap is False:
                continue
            reasons = ["same_category"]
            if r.community_id == n.community_id:
                reasons.append("same_community")
            if overlap:
                reasons.append("times_overlap")
            if n.place and n.place.strip() == r.place.strip():
                reasons.append("same_place")
            score = sum(WEIGHTS[why] for why in reasons)
            out.append(Match(n, r, score, tuple(reasons)))
    out.sort(key=lambda m: (-m.score, m.need.created_at, m.need.id, m.resource.created_at))
    return out


# a need or resource may still be put on the menu in these states (a need can yield several
# jobs, so one already in progress may yield another)
MATCHABLE = {NeedStatus.OPEN, NeedStatus.CLAIMED, NeedStatus.IN_PROGRESS}


def check_matchable(item_id: UUID, kind: str, status: str, want: NeedKind) -> None:
    if kind != want.value:
        raise NotMatchable(
            Said(
                f"{item_id} 是 {kind}，这里要的是 {want.value}",
                f"{item_id} is a {kind}, not a {want.value}",
            ),
            item_id=str(item_id),
        )
    if NeedStatus(status) not in MATCHABLE:
        raise NotMatchable(
            Said(
                f"{item_id} 已是 {status}，不能再排进菜单",
                f"{item_id} is {status}: it can go on no more menus",
            ),
            item_id=str(item_id),
            status=status,
        )


def check_partner_member(partner_id: str, account_id: str, is_member: bool) -> None:
    """A partner's menu item is done by its own members."""
    if not is_member:
        raise NotPartnerMember(
            Said(
                f"{account_id} 不是合伙人 {partner_id} 的成员；这个岗位由该合伙人承接",
                f"{account_id} is not a member of partner {partner_id}, which took this job",
            ),
            partner_id=partner_id,
            account_id=account_id,
        )
