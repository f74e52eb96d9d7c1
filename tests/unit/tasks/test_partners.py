"""Needs × resources (issue 21, part 4), the pure rules: which resource is proposed for which
need and in what order, who may post what, and what may still go on a menu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from jifen.kernel.auth import Role
from jifen.tasks.domain.intake import NeedKind
from jifen.tasks.domain.partners import (
    Item,
    NeedSource,
    NotMatchable,
    NotPartnerMember,
    NotYours,
    check_matchable,
    check_partner_member,
    propose,
    source_of,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def item(
    kind: NeedKind,
    category: str | None = "other",
    community: str = "penglai-grid",
    place: str = "",
    days: tuple[int, int] | None = None,
    at: int = 0,
) -> Item:
    return Item(
        id=uuid4(),
        kind=kind,
        community_id=community,
        category=category,
        place=place,
        wanted_from=T0 + timedelta(days=days[0]) if days else None,
        wanted_until=T0 + timedelta(days=days[1]) if days else None,
        created_at=T0 + timedelta(minutes=at),
    )


def test_a_resource_is_proposed_for_a_need_of_its_category_best_first() -> None:
    need = item(NeedKind.WISH, place="5号楼", days=(0, 10))
    near = item(NeedKind.OFFER, place="5号楼", days=(5, 6))  # all four reasons
    across = item(NeedKind.OFFER, community="lianhua-grid")  # category only
    same_grid = item(NeedKind.OFFER)  # category and community
    other_kind = item(NeedKind.OFFER, category="meal_delivery")
    later = item(NeedKind.OFFER, days=(20, 21))  # its time excludes the need's
    got = propose([need], [across, other_kind, later, same_grid, near])
    assert [(m.resource.id, m.score) for m in got] == [
        (near.id, 6),
        (same_grid.id, 4),
        (across.id, 2),
    ]
    assert got[0].reasons == ("same_category", "same_community", "times_overlap", "same_place")
    assert got[2].reasons == ("same_category",)


def test_nothing_without_a_category_and_no_need_paired_with_a_need() -> None:
    assert propose([item(NeedKind.WISH, category=None)], [item(NeedKind.OFFER)]) == []
    assert propose([item(NeedKind.WISH)], [item(NeedKind.OFFER, category=None)]) == []
    assert propose([item(NeedKind.WISH)], [item(NeedKind.WISH)]) == []
    assert propose([item(NeedKind.OFFER)], [item(NeedKind.OFFER)]) == []


def test_equal_scores_keep_the_older_need_first() -> None:
    young, old = item(NeedKind.WISH, at=5), item(NeedKind.WISH, at=1)
    offer = item(NeedKind.OFFER)
    assert [m.need.id for m in propose([young, old], [offer])] == [old.id, young.id]


@pytest.mark.parametrize(
    ("role", "kind", "asked", "want"),
    [
        (Role.OFFICER, NeedKind.WISH, NeedSource.VISIT, NeedSource.VISIT),
        (Role.OFFICER, NeedKind.OFFER, None, NeedSource.OFFICER),
        (Role.ADMIN, NeedKind.WISH, NeedSource.RESIDENT, NeedSource.RESIDENT),
        (Role.APP, NeedKind.WISH, None, NeedSource.RESIDENT),
        (Role.APP, NeedKind.OFFER, NeedSource.PARTNER, NeedSource.PARTNER),
        (Role.VOLUNTEER, NeedKind.WISH, None, NeedSource.RESIDENT),
        (Role.MERCHANT, NeedKind.OFFER, None, NeedSource.PARTNER),
    ],
)
def test_who_posts_what_and_from_where(
    role: Role, kind: NeedKind, asked: NeedSource | None, want: NeedSource
) -> None:
    assert source_of(role, kind, asked) is want


@pytest.mark.parametrize(
    ("role", "kind", "asked"),
    [
        (Role.VOLUNTEER, NeedKind.OFFER, None),  # a gig worker posts their own wish, not offers
        (Role.VOLUNTEER, NeedKind.WISH, NeedSource.VISIT),  # nor says an officer visited
        (Role.MERCHANT, NeedKind.WISH, None),  # a merchant offers
        (Role.APP, NeedKind.WISH, NeedSource.VISIT),
        (Role.APP, NeedKind.WISH, NeedSource.OFFICER),
    ],
)
def test_what_a_role_may_not_post_is_403(
    role: Role, kind: NeedKind, asked: NeedSource | None
) -> None:
    with pytest.raises(NotYours) as refused:
        source_of(role, kind, asked)
    assert refused.value.status == 403


def test_only_open_claimed_or_in_progress_items_of_the_right_kind_go_on_a_menu() -> None:
    some = UUID(int=7)
    for status in ("open", "claimed", "in_progress"):
        check_matchable(some, "wish", status, NeedKind.WISH)
    for status in ("done", "closed"):
        with pytest.raises(NotMatchable):
            check_matchable(some, "wish", status, NeedKind.WISH)
    with pytest.raises(NotMatchable) as refused:
        check_matchable(some, "offer", "open", NeedKind.WISH)
    assert refused.value.reason == "not_matchable"


def test_a_partners_job_is_for_its_members() -> None:
    check_partner_member("partner-barbers", "vol-1", True)
    with pytest.raises(NotPartnerMember) as refused:
        check_partner_member("partner-barbers", "vol-2", False)
    assert refused.value.reason == "not_partner_member" and refused.value.status == 409


def test_a_months_window_is_its_first_instant_to_the_next_months() -> None:
    from jifen.tasks.domain.jobs import month_window

    assert month_window("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_window("2026-02")[1] == datetime(2026, 3, 1, tzinfo=UTC)
    assert month_window(None) == (None, None)
