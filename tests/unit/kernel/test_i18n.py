"""Errors in the caller's language (issue 21): ``Accept-Language`` picks Chinese or English,
both (Chinese first) when it names neither; the request models' validation messages are
translated with their limits; a malformed body says where it broke."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.i18n import Said, negotiate, say, validation_message
from jifen.kernel.web import Refusal, create_app


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, None),
        ("", None),
        ("*", None),
        ("fr-FR, de;q=0.8", None),
        ("zh-CN", "zh"),
        ("zh-Hans-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("en;q=0.5, zh-TW;q=0.7", "zh"),
        ("zh;q=0, en", "en"),  # q=0: not acceptable
        ("ZH-cn", "zh"),
        ("en;q=abc, zh;q=0.1", "zh"),  # a q that is not a number counts as 0
        ("en, zh", "en"),  # a tie goes to the one named first
    ],
)
def test_accept_language_picks_chinese_english_or_both(header: str | None, lang: str) -> None:
    assert negotiate(header) == lang


def test_both_languages_chinese_first_and_no_english_said_twice() -> None:
    assert say(None, "至少 2 个字符", "String should have at least 2 characters") == (
        "至少 2 个字符 — String should have at least 2 characters"
    )
    assert say("zh", "中", "en") == "中" and say("en", "中", "en") == "en"
    assert say(None, "取值不符合要求：bad month", "bad month") == "取值不符合要求：bad month"


def test_validation_messages_carry_their_limits_in_chinese() -> None:
    zh, en = validation_message(
        {"type": "string_too_short", "msg": "String should have at least 2 characters",
         "ctx": {"min_length": 2}}
    )  # fmt: skip
    assert (zh, en) == ("至少 2 个字符", "String should have at least 2 characters")
    zh, _ = validation_message(
        {"type": "literal_error", "msg": "x", "ctx": {"expected": "'a' or 'b'"}}
    )
    assert zh == "应为以下之一：'a' / 'b'"
    zh, en = validation_message({"type": "some_new_type", "msg": "Something else"})
    assert (zh, en) == ("不符合要求", "Something else")  # never an empty message
    zh, _ = validation_message({"type": "greater_than_equal", "msg": "x", "ctx": {}})
    assert zh == "不符合要求"  # a limit the error did not carry is not invented


class Appeal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=2, max_length=500)]
    points: int


def _client() -> httpx.AsyncClient:
    app = create_app(service="i18n", title="t", description="t")

    @app.post("/appeals")
    async def post(appeal: Appeal) -> dict[str, str]:
        return {"reason": appeal.reason}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_two_character_chinese_reason_passes_and_one_character_is_refused_in_chinese() -> (
    None
):
    async with _client() as c:
        ok = await c.post("/appeals", json={"reason": "重复", "points": 1})
        assert ok.status_code == 200, ok.text
        r = await c.post(
            "/appeals", json={"reason": "否", "points": 1}, headers={"accept-language": "zh-CN"}
        )
    assert r.status_code == 422
    assert r.headers["content-language"] == "zh-CN"
    body = r.json()
    assert body["detail"] == "body.reason: 至少 2 个字符", body
    assert body["title"] == "内容无法处理"
    assert body["errors"][0]["msg_zh"] == "至少 2 个字符"
    assert body["errors"][0]["msg"] == "String should have at least 2 characters"


async def test_english_when_asked_and_both_when_not() -> None:
    bad = {"reason": "ok", "points": "many", "extra": 1}
    async with _client() as c:
        en = await c.post("/appeals", json=bad, headers={"accept-language": "en-GB,en;q=0.9"})
        both = await c.post("/appeals", json=bad)
    assert en.headers["content-language"] == "en"
    assert en.json()["detail"] == (
        "body.points: Input should be a valid integer, unable to parse string as an integer; "
        "body.extra: Extra inputs are not permitted"
    )
    assert en.json()["title"] == "Unprocessable Content"
    assert both.headers["content-language"] == "zh-CN, en"
    assert both.json()["detail"].startswith(
        "body.points: 应为整数 — Input should be a valid integer"
    )
    assert (
        "body.extra: 不认识的字段，不能提供 — Extra inputs are not permitted"
        in (both.json()["detail"])
    )


async def test_malformed_json_says_it_is_not_json_and_where() -> None:
    async with _client() as c:
        r = await c.post(
            "/appeals",
            content=b'{"reason": "\xe9\x87\x8d\xe5\xa4\x8d" "points": 1}',
            headers={"content-type": "application/json", "accept-language": "zh"},
        )
        en = await c.post(
            "/appeals",
            content=b'{"reason": ',
            headers={"content-type": "application/json", "accept-language": "en"},
        )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body (char 16): 请求体不是合法的 JSON：Expecting"), r.text
    assert en.status_code == 422
    assert en.json()["detail"].startswith("body (char 11): the body is not valid JSON: Expecting")
    assert "JSON decode error" not in r.text + en.text


async def test_the_edge_and_routing_speak_the_callers_language_too() -> None:
    async with _client() as c:
        nul = await c.post(
            "/appeals",
            content=b'{"reason": "a\\u0000b", "points": 1}',
            headers={"content-type": "application/json", "accept-language": "zh-CN"},
        )
        dup = await c.post(
            "/appeals",
            content=b'{"reason": "ab", "reason": "cd", "points": 1}',
            headers={"content-type": "application/json", "accept-language": "en"},
        )
        nowhere = await c.get("/nowhere", headers={"accept-language": "zh-CN"})
        wrong = await c.get("/appeals", headers={"accept-language": "en"})
    assert (
        nul.status_code == 422
        and nul.json()["detail"] == "body.reason：文本不能含 NUL 字符（U+0000）"
    )
    assert dup.status_code == 422 and dup.json()["detail"].startswith("duplicate key 'reason'")
    assert nowhere.status_code == 404 and nowhere.json()["detail"] == "没有这个地址：/nowhere"
    assert nowhere.json()["title"] == "未找到"
    assert wrong.status_code == 405 and wrong.json()["detail"] == "/appeals does not take GET"


def test_a_length_checked_after_a_validator_is_said_in_characters() -> None:
    """``Annotated[str, AfterValidator(f), Field(min_length=2)]`` (the tasks service's text)
    fails as pydantic's generic ``too_short``, "Value should have at least 2 items"."""
    from pydantic import AfterValidator, TypeAdapter, ValidationError

    short = TypeAdapter(
        Annotated[str, AfterValidator(str.strip), Field(min_length=2, max_length=3)]
    )
    cases = [
        ("否", ("至少 2 个字符", "String should have at least 2 characters")),
        ("重复重复", ("最多 3 个字符", "String should have at most 3 characters")),
    ]
    for text, said in cases:
        with pytest.raises(ValidationError) as caught:
            short.validate_python(text)
        assert validation_message(caught.value.errors()[0]) == said
    zh, _ = validation_message(
        {"type": "too_short", "msg": "x", "input": [1], "ctx": {"min_length": 2}}
    )
    assert zh == "至少 2 项"  # a list's length is in items


def test_a_said_text_is_one_string_in_both_languages_until_rendered() -> None:
    text = Said("没有岗位 7", "no job 7")
    assert text == "没有岗位 7 — no job 7" and isinstance(text, str)  # logs, str(exc)
    assert (text.to("zh"), text.to("en"), text.to(None)) == ("没有岗位 7", "no job 7", text)
    assert str(NotFound(text)) == "没有岗位 7 — no job 7"


class _Full(DomainRefusal):
    reason = "job_full"


def _refusing() -> httpx.AsyncClient:
    """One route per way of saying no: each said with a Said, as the services do."""
    app = create_app(service="i18n", title="t", description="t")

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound(Said("没有岗位 7", "no job 7"))

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise HTTPException(403, Said("志愿者只能为自己的账户操作", "a volunteer acts for itself"))

    @app.get("/full")
    async def full() -> None:
        raise _Full(Said("全部 3 个名额都已被领取", "all 3 places are taken"), capacity=3)

    @app.get("/exists")
    async def exists() -> None:
        raise Refusal("community_exists", Said("本组织已有社区 'a'", "already has community 'a'"))

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    ("path", "status", "zh", "en"),
    [
        ("/missing", 404, "没有岗位 7", "no job 7"),
        ("/forbidden", 403, "志愿者只能为自己的账户操作", "a volunteer acts for itself"),
        ("/full", 409, "全部 3 个名额都已被领取", "all 3 places are taken"),
        ("/exists", 409, "本组织已有社区 'a'", "already has community 'a'"),
    ],
)
async def test_every_way_of_saying_no_answers_in_the_callers_language(
    path: str, status: int, zh: str, en: str
) -> None:
    async with _refusing() as c:
        said = {
            lang: await c.get(path, headers={"accept-language": lang} if lang else {})
            for lang in ("zh-CN", "en-US", None)
        }
    for lang, detail, language in (
        ("zh-CN", zh, "zh-CN"),
        ("en-US", en, "en"),
        (None, f"{zh} — {en}", "zh-CN, en"),
    ):
        r = said[lang]
        assert r.status_code == status, r.text
        assert (r.json()["detail"], r.headers["content-language"]) == (detail, language)
    assert said["zh-CN"].headers["content-type"].startswith("application/problem+json")
    if path == "/full":  # the refusal's facts and reason beside the detail, as before
        assert (said["en-US"].json()["reason"], said["en-US"].json()["capacity"]) == ("job_full", 3)
