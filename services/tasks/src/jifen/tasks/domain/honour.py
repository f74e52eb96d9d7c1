"""The opt-in honour roll, the rules free of storage and HTTP: who may be listed (only a
volunteer who said so, by the name on the records) and how the roll is ranked (by points,
equal points sharing a rank)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jifen.kernel.errors import DomainRefusal

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class NotListable(DomainRefusal):
    reason = "no_name_on_record"


def check_listable(display_name: str | None) -> None:
    """A volunteer is listed by the name the organisation's records give them, never by an
    account id or a phone number: without one there is nothing to list them by."""
    if display_name is None:
        raise NotListable(
            zh="本组织的志愿者记录里没有您；请联系社区工作人员登记后再加入光荣榜",
            en="you are not on the organisation's records as a volunteer; ask an officer to "
            "record you, then join the honour roll",
            reason="not_on_record",
        )
    if not display_name.strip():
        raise NotListable(
            zh="您的记录里没有名字，光荣榜无法列出您；请联系社区工作人员补上名字",
            en="your record has no name to list you by; ask an officer to add your name",
        )


def ranked(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The roll's rows (highest points first) with their rank: 1, 2, 2, 4 …"""
    out: list[dict[str, Any]] = []
    for i, r in enumerate(rows):
        points = int(r["points"])
        rank = out[-1]["rank"] if out and out[-1]["points"] == points else i + 1
        out.append(
            {
                "rank": rank,
                "display_name": r["display_name"],
                "services": int(r["services"]),
                "points": points,
            }
        )
    return out
