"""The portal's pure parts: paging within the page budget, months, where a sign-in may send a
person afterwards, sessions and their CSRF tokens, and that every text has both languages."""

from __future__ import annotations

import string

import pytest
from jifen.portal.app import _local, paged, shift_month
from jifen.portal.sessions import Sessions
from jifen.portal.texts import TEXTS, text


def test_a_long_list_is_shown_twenty_at_a_time() -> None:
    items = list(range(45))
    first, pager = paged(items, 1)
    assert first == list(range(20)) and (pager.prev, pager.next, pager.pages) == (None, 2, 3)
    last, pager = paged(items, 3)
    assert last == list(range(40, 45)) and (pager.prev, pager.next) == (2, None)
    # a page past the end shows the last; an empty list is one empty page
    assert paged(items, 99)[0] == last
    assert paged([], 1)[0] == [] and paged([], 1)[1].pages == 1


def test_months_roll_over_the_year() -> None:
    assert shift_month("2026-12", 1) == "2027-01"
    assert shift_month("2026-01", -1) == "2025-12"
    assert shift_month("2026-06", 0) == "2026-06"


@pytest.mark.parametrize(
    ("asked", "followed"),
    [
        ("/jobs/1", "/jobs/1"),
        ("/me", "/me"),
        ("//evil.example/", "/me"),
        ("https://evil.example/", "/me"),
        ("javascript:alert(1)", "/me"),
    ],
)
def test_after_sign_in_only_a_path_of_this_site_is_followed(asked: str, followed: str) -> None:
    assert _local(asked) == followed


def test_signing_in_gives_a_new_session_id_and_csrf_token() -> None:
    sessions = Sessions(idle_seconds=60)
    before = sessions.new()
    after = sessions.renew(before)
    assert after.id != before.id and after.csrf != before.csrf
    assert sessions.get(before.id) is None and sessions.get(after.id) is after
    assert after.csrf_ok(after.csrf) and not after.csrf_ok(before.csrf)
    assert not after.csrf_ok(None) and not after.csrf_ok("")


def test_an_idle_session_is_forgotten() -> None:
    sessions = Sessions(idle_seconds=0)
    s = sessions.new()
    s.seen -= 1
    assert sessions.get(s.id) is None


def test_every_text_has_chinese_and_english_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, (zh, en) in TEXTS.items():
        assert zh and en, key
        if key not in ("switch", "switch_label"):  # the way to the other language is in it
            # Chinese characters, or at least Chinese punctuation around the values
            assert any("\u4e00" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" for c in zh), key
        names_zh = {f for _, f, _, _ in fields.parse(zh) if f}
        names_en = {f for _, f, _, _ in fields.parse(en) if f}
        assert names_zh == names_en, key
    assert text("zh", "balance_value", balance=60) == "60 分"
    assert text("en", "balance_value", balance=60) == "60 points"
