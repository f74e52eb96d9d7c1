"""What a person reads in an error, Chinese first and English beside it (issue 21).

``Accept-Language`` chooses: a caller preferring Chinese (``zh``, ``zh-CN``, ``zh-Hans``…) gets
the Chinese text, one preferring English gets the English, and one that states no preference
between the two (no header, ``*``, only other languages) gets both, Chinese first. The
validation messages of the request models (pydantic's error types) are translated here, with
their limits; pydantic's own English message is the English side, so an English reader sees
what they saw before.

Pure: no web imports, so the catalogue is unit-tested on its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Lang = Literal["zh", "en"] | None

CONTENT_LANGUAGE: dict[Lang, str] = {"zh": "zh-CN", "en": "en", None: "zh-CN, en"}


def negotiate(header: str | None) -> Lang:
    """The language of ``Accept-Language`` ranked first among Chinese and English (ties: the
    one named first); None when neither is asked for by name (then both are given)."""
    if not header:
        return None
    best: tuple[float, int, Lang] | None = None
    for i, part in enumerate(header.split(",")[:32]):  # bounded: a header is the caller's
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        lang: Lang
        if tag == "zh" or tag.startswith("zh-"):
            lang = "zh"
        elif tag == "en" or tag.startswith("en-"):
            lang = "en"
        else:
            continue
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if best is None or q > best[0]:
            best = (q, i, lang)
    return best[2] if best is not None else None


def say(lang: Lang, zh: str, en: str) -> str:
    """One text in the chosen language; both (Chinese first) when none was chosen, unless the
    Chinese already carries the English (an English name or message quoted in it)."""
    if lang == "zh":
        return zh
    if lang == "en" or not zh:
        return en
    if en in zh:
        return zh
    return f"{zh} — {en}"


class Said(str):
    """A text in both languages that still is one ``str``: both (Chinese first, as
    :func:`say` gives them to a caller who chose neither) wherever it is used as a string — a
    log line, ``str(exc)``, an exception's detail — and the caller's one language where the
    web kernel renders a problem (``Said.to(lang)``). So a refusal, a 404 or an HTTP error is
    written once, ``raise NotFound(Said("没有任务 …", "no job …"))``, and no handler needs to
    know how it was said."""

    zh: str
    en: str

    def __new__(cls, zh: str, en: str) -> Said:
        text = super().__new__(cls, say(None, zh, en))
        text.zh, text.en = zh, en
        return text

    def to(self, lang: Lang) -> str:
        return say(lang, self.zh, self.en)


def rendered(lang: Lang, text: object) -> object:
    """``text`` in ``lang`` when it was said in both (:class:`Said`), else as it is."""
    return text.to(lang) if isinstance(text, Said) else text


TITLES_ZH = {
    400: "请求有误",
    401: "未认证",
    403: "无权操作",
    404: "未找到",
    405: "不支持此方法",
    409: "请求被拒绝",
    413: "请求体过大",
    415: "不支持的内容类型",
    422: "内容无法处理",
    429: "请求过于频繁",
    500: "服务器内部错误",
    503: "服务暂不可用",
}


_PHRASES_ZH = {"Refused": "请求被拒绝"}  # a domain refusal, whatever its status


def title(lang: Lang, status: int, english: str) -> str:
    zh = _PHRASES_ZH.get(english) or TITLES_ZH.get(status)
    return english if zh is None else say(lang, zh, english)


def _expected(ctx: Mapping[str, Any]) -> str:
    return str(ctx.get("expected", "")).replace(" or ", " / ")


# pydantic's error type -> the Chinese message (formatted with the error's ctx)
_ZH: dict[str, Any] = {
    "missing": "必填，未提供",
    "extra_forbidden": "不认识的字段，不能提供",
    "string_type": "应为文本",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "string_pattern_mismatch": "格式不符",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数，不能带小数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应不大于 {le}",
    "multiple_of": "应为 {multiple_of} 的倍数",
    "uuid_type": "应为 UUID",
    "uuid_parsing": "应为 UUID（如 123e4567-e89b-12d3-a456-426614174000）",
    "datetime_type": "应为日期时间",
    "datetime_parsing": "应为 ISO 8601 日期时间（如 2026-12-01T08:00:00Z）",
    "datetime_from_date_parsing": "应为 ISO 8601 日期时间（如 2026-12-01T08:00:00Z）",
    "timezone_aware": "应带时区（如 Z 或 +08:00）",
    "date_type": "应为日期",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "enum": lambda ctx: f"应为以下之一：{_expected(ctx)}",
    "literal_error": lambda ctx: f"应为以下之一：{_expected(ctx)}",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "list_type": "应为数组",
    "json_invalid": lambda ctx: f"请求体不是合法的 JSON：{ctx.get('error', '')}",
    "json_type": "应为 JSON",
    "url_parsing": "应为网址",
    "url_type": "应为网址",
    "value_error": "取值不符合要求",
    "assertion_error": "取值不符合要求",
}


def validation_message(error: Mapping[str, Any]) -> tuple[str, str]:
    """(Chinese, English) of one pydantic error (a dict of ``exc.errors()``)."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    en = str(error.get("msg", ""))
    if kind == "json_invalid":
        en = f"the body is not valid JSON: {ctx.get('error', en)}"
    if kind in ("too_short", "too_long") and isinstance(error.get("input"), str):
        # a length checked after a validator (``Annotated[str, AfterValidator(...)]``): pydantic
        # says "Value should have at least 2 items after validation"; it is characters
        kind = "string_" + kind
        limit, n = (
            ("at least", ctx.get("min_length"))
            if kind == "string_too_short"
            else (
                "at most",
                ctx.get("max_length"),
            )
        )
        en = f"String should have {limit} {n} characters"
    template = _ZH.get(kind)
    if template is None:
        return "不符合要求", en
    try:
        zh = template(ctx) if callable(template) else template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        zh = "不符合要求"
    if kind in ("value_error", "assertion_error") and en:
        # our own validators' words (English): kept after the Chinese gist
        zh = f"{zh}：{en.removeprefix('Value error, ').removeprefix('Assertion failed, ')}"
    return zh, en


def where(loc: tuple[Any, ...] | list[Any]) -> str:
    """``body.reason``, ``query.limit``, ``header.idempotency-key``; a malformed body's
    character offset is said as one."""
    parts = list(loc)
    if len(parts) == 2 and parts[0] == "body" and isinstance(parts[1], int):
        return f"body (char {parts[1]})"
    return ".".join(map(str, parts))
