"""The points report (issue 21, part 2): what the ledger moved for an organisation in a
period — issued (credits), reversed, redeemed (debits less refunds), adjusted — per category,
and what its accounts held at the start and the end. Pure: the sums come from the ledger."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# the tasks service's built-in categories (jifen.tasks.domain.jobs.CATEGORY_LABELS)
CATEGORY_NAMES = {
    "meal_delivery": ("助老送餐", "Meal delivery"),
    "elder_visit": ("探访独居老人", "Elder visit"),
    "traffic_guidance": ("交通劝导", "Traffic guidance"),
    "civility_persuasion": ("文明劝导", "Civility persuasion"),
    "hazard_patrol": ("隐患巡查", "Hazard patrol"),
    "free_repair_day": ("义务维修日", "Free repair day"),
    "lost_person_search": ("寻找走失人员", "Lost person search"),
    "emergency_response": ("应急响应", "Emergency response"),
    "other": ("其他", "Other"),
}
FIGURES = ("issued", "reversed", "redeemed", "refunded", "adjusted")
_BY_KIND = {"credit": "issued", "reversal": "reversed", "debit": "redeemed",
            "refund": "refunded", "adjustment": "adjusted"}  # fmt: skip


def shape(rows: Iterable[Mapping[str, Any]], opening: int, closing: int) -> dict[str, Any]:
    """``categories`` (what completions of each category earned and lost) and ``total``.
    Redeemed and reversed are positive numbers of points taken away; adjusted keeps its sign.
    ``closing`` = ``opening`` + issued − reversed − redeemed + refunded + adjusted, but for an
    entry recorded across the period's edge while another of the same account waited on it
    (recorded_at is its transaction's start): so the two are reported, not asserted."""
    total = dict.fromkeys(FIGURES, 0)
    categories: dict[str | None, dict[str, Any]] = {}
    for r in rows:
        figure = _BY_KIND[r["kind"]]
        amount = int(r["amount"])
        value = -amount if figure in ("reversed", "redeemed") else amount
        total[figure] += value
        if r["kind"] in ("credit", "reversal"):
            zh, en = CATEGORY_NAMES.get(
                r["category"] or "", (r["category"] or "", r["category"] or "")
            )
            c = categories.setdefault(
                r["category"],
                {"category": r["category"], "category_zh": zh, "category_en": en,
                 "issued": 0, "reversed": 0, "completions": 0},
            )  # fmt: skip
            c[figure] += value
            if r["kind"] == "credit":
                c["completions"] += int(r["entries"])
    return {
        "opening_outstanding": opening,
        "closing_outstanding": closing,
        "categories": sorted(categories.values(), key=lambda c: c["category"] or ""),
        "total": total,
    }
