"""Service certificates (issue 21, part 2): the verification code, the figures, the PDF."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from jifen.tasks.certificate_pdf import render
from jifen.tasks.domain.certificates import CODE, figures, new_code

LINES = [
    {"verified_at": "2026-03-15T09:00:00+00:00", "title": "免费维修电动车",
     "category": "free_repair_day", "minutes": 480, "points": 30},
    {"verified_at": "2026-04-02T04:00:00+00:00", "title": "助老送餐", "category": "meal_delivery",
     "minutes": 90, "points": 20},
]  # fmt: skip


def test_codes_are_unguessable_and_read_aloud_without_confusion() -> None:
    codes = {new_code() for _ in range(500)}
    assert len(codes) == 500 and all(CODE.fullmatch(c) for c in codes)
    assert not any(ch in c for c in codes for ch in "ILOU")  # no 1/I, 0/O look-alikes


def test_the_figures_are_the_sum_of_the_record() -> None:
    assert figures(LINES) == {"jobs": 2, "service_minutes": 570, "points": 50}
    assert figures([]) == {"jobs": 0, "service_minutes": 0, "points": 0}


def test_the_pdf_is_a_pdf_in_a_chinese_font_and_the_same_for_the_same_record() -> None:
    cert = {
        "code": "JF-7K2QX-M9ZD4-R8T3V-0HP6W", "org_name": "江门骑手", "account_id": "vol-1",
        "display_name": "李师傅", "starts_on": date(2026, 1, 1), "ends_on": date(2027, 1, 1),
        "jobs": 2, "service_minutes": 570, "points": 50, "lines": LINES,
        "issued_by": "vol-1", "issued_at": datetime(2026, 12, 2, tzinfo=UTC),
    }  # fmt: skip
    body = render(cert, "/v1/certificates/JF-7K2QX-M9ZD4-R8T3V-0HP6W")
    assert body.startswith(b"%PDF-") and b"STSong-Light" in body
    assert render(cert, "/v1/certificates/JF-7K2QX-M9ZD4-R8T3V-0HP6W") == body  # invariant
    assert _pages(body) == 1
    assert _pages(render({**cert, "lines": LINES * 60}, "/x")) > 1  # a long record runs on


def _pages(pdf: bytes) -> int:
    found = re.search(rb"/Count (\d+)", pdf)
    assert found, "a page tree"
    return int(found[1])
