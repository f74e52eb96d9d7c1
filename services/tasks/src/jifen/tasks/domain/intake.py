"""Hazard reports, micro-wishes and partner offers: which status moves are allowed.

Each item keeps its history, so "request -> task -> done" can be followed and reported.
"""

from __future__ import annotations

from enum import StrEnum

from jifen.kernel.i18n import Said
from jifen.tasks.domain.jobs import WrongState


class HazardKind(StrEnum):
    STAIRWELL_CLUTTER = "stairwell_clutter"
    SANITATION_BLIND_SPOT = "sanitation_blind_spot"
    FIRE_RISK = "fire_risk"
    TRAFFIC_HAZARD = "traffic_hazard"
    OTHER = "other"


class HazardStatus(StrEnum):
    REPORTED = "reported"
    IN_PROGRESS = "in_progress"  # triaged into a job
    DUPLICATE = "duplicate"  # merged into an earlier report
    CLOSED = "closed"  # closed with a reason, no job
    DONE = "done"  # its job has a verified completion


class NeedKind(StrEnum):
    WISH = "wish"  # a resident's micro-wish
    OFFER = "offer"  # a partner's offer


class NeedStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CLOSED = "closed"


_HAZARD_MOVES: dict[HazardStatus, set[HazardStatus]] = {
    HazardStatus.REPORTED: {HazardStatus.IN_PROGRESS, HazardStatus.DUPLICATE, HazardStatus.CLOSED},
    HazardStatus.IN_PROGRESS: {HazardStatus.DONE, HazardStatus.CLOSED},
}

_NEED_MOVES: dict[NeedStatus, set[NeedStatus]] = {
    NeedStatus.OPEN: {NeedStatus.CLAIMED, NeedStatus.IN_PROGRESS, NeedStatus.CLOSED},
    NeedStatus.CLAIMED: {NeedStatus.IN_PROGRESS, NeedStatus.CLOSED, NeedStatus.DONE},
    NeedStatus.IN_PROGRESS: {NeedStatus.DONE, NeedStatus.CLOSED},
}


def move_hazard(current: HazardStatus, to: HazardStatus) -> HazardStatus:
    if to not in _HAZARD_MOVES.get(current, set()):
        raise WrongState(
            Said(
                f"状态为 {current.value} 的隐患报告不能改为 {to.value}",
                f"a hazard report that is {current.value} cannot become {to.value}",
            ),
            status=current.value,
        )
    return to


def move_need(current: NeedStatus, to: NeedStatus) -> NeedStatus:
    if to not in _NEED_MOVES.get(current, set()):
        raise WrongState(
            Said(
                f"状态为 {current.value} 的事项不能改为 {to.value}",
                f"a {current.value} item cannot become {to.value}",
            ),
            status=current.value,
        )
    return to
