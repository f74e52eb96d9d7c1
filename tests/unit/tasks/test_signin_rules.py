"""The sign-in rules, free of storage and HTTP: what a phone number is, what a page may show of
it, the code's hash and comparison, and the refusals' words."""

from __future__ import annotations

import pytest

from jifen.tasks.domain import signin as rules


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("13800000001", "13800000001"),
        ("+86 138-0000-0001", "+8613800000001"),
        ("(020) 8888.8888", "02088888888"),
        ("138 0000 0001\t", "13800000001"),
    ],
)
def test_a_number_is_kept_as_plus_and_digits(typed: str, normal: str) -> None:
    assert rules.normalise_phone(typed) == normal


@pytest.mark.parametrize("typed", ["", "12345", "call me", "+", "1" * 16, "138O0000001", "++8613"])
def test_what_is_not_a_number_is_refused(typed: str) -> None:
    assert rules.normalise_phone(typed) is None


def test_a_page_shows_only_the_ends_of_a_number() -> None:
    assert rules.mask("13800000001") == "138****0001"
    assert rules.mask("+8613800000001") == "+86****0001"
    assert "0000" not in rules.mask("1380000")


def test_a_code_matches_only_its_organisation_and_number() -> None:
    code = rules.new_code()
    assert len(code) == rules.CODE_DIGITS and code.isdigit()
    stored = rules.code_hash("org-a", "13800000001", code)
    assert rules.matches(stored, "org-a", "13800000001", code)
    assert not rules.matches(stored, "org-b", "13800000001", code)
    assert not rules.matches(stored, "org-a", "13800000002", code)
    wrong = f"{(int(code) + 1) % 10**rules.CODE_DIGITS:0{rules.CODE_DIGITS}d}"
    assert not rules.matches(stored, "org-a", "13800000001", wrong)
    assert not rules.matches(rules.unguessable_hash(), "org-a", "13800000001", code)


def test_codes_are_not_predictable() -> None:
    assert len({rules.new_code() for _ in range(200)}) > 190


def test_the_refusals_count_down_in_both_languages() -> None:
    three = rules.wrong_code(3)
    assert (three.status, three.reason, three.facts["attempts_left"]) == (401, "wrong_code", 3)
    assert "3" in (three.zh or "") and "3 tries" in (three.en or "")
    void = rules.wrong_code(0)
    assert void.reason == "code_void" and "作废" in (void.zh or "")
    soon = rules.too_soon(17)
    assert (soon.status, soon.facts["retry_after"]) == (429, 17)
    assert "—" in soon.detail  # both languages when none is asked for


def test_the_text_message_names_the_code_and_how_long_it_lives() -> None:
    text = rules.message("123456", "江门骑手")
    assert text.startswith("【江门骑手】") and text.count("123456") == 2 and "5 分钟" in text
