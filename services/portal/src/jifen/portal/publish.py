"""The officer publishes the month's service menu from the portal (#20: "Officer: publish the
month's menu"): ``/officer/menu``.

The officer chooses the community and the month and types up to ``ROWS`` jobs (a fixed number
of rows, so it needs no JavaScript; an empty row is ignored): title, category, place, start and
end in the organisation's local time (its timezone from tasks ``GET /v1/organisation``),
points, places and how it is verified. The rows are read here (``read_rows``, pure): each bad
field is named in the person's language, and the local times become UTC (``to_utc``) for tasks
``POST /v1/menus``, which publishes them all or none. The menu's month is the API's: a job
belongs to the UTC month it starts in, so a job typed in the first hours of a local month (in
a zone east of UTC) is said to fall in the month before, not sent to be refused.

The same job fields (``read_job``) serve the board's "turn it into a job" forms
(``jifen.portal.board``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jifen.portal.apis import ApiError
from jifen.portal.figures import is_month, month_window
from jifen.portal.texts import Lang, text

if TYPE_CHECKING:
    from jifen.portal.app import Pages

Handler = Callable[..., Awaitable[Response]]

ROWS = 5  # the job rows the menu form shows (no JavaScript adds more)
# a row's category list, held to the page budget: the built-in ones first, then the
# organisation's own, their names cut short
CATEGORIES_SHOWN = 12
CATEGORY_LABEL_CHARS = 16
COMMUNITY_NAME_CHARS = 24
PLACE_CHARS = 100  # a job's place as the form takes it (the API takes up to 300)
VERIFICATIONS = ("officer", "checkin", "automatic")  # tasks' VerificationMode
JOB_FIELDS = ("title", "category", "place", "starts", "ends", "points", "capacity", "verification")
# what makes a row not empty (a select always has a value)
_TYPED = ("title", "place", "starts", "ends", "points", "capacity")
_INT = re.compile(r"\d{1,9}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S")


class BadTime(ValueError):
    """A local time that cannot be read, or that does not exist in the zone (a DST gap)."""


def zone(name: str | None) -> ZoneInfo:
    """The organisation's zone; Asia/Shanghai (the schemes' own) if it names none we know."""
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def to_utc(typed: str, tz: ZoneInfo) -> datetime:
    """A wall-clock time typed as ``YYYY-MM-DDTHH:MM`` (what a datetime-local input sends) or
    ``YYYY-MM-DD HH:MM`` in ``tz``, as the UTC instant. A time a DST change skips is refused
    rather than moved; one it repeats is the first of the two."""
    raw = typed.strip()
    for fmt in _LOCAL_FORMATS:
        try:
            naive = datetime.strptime(raw, fmt)
            break
        except ValueError:
            continue
    else:
        raise BadTime(raw)
    aware = naive.replace(tzinfo=tz)
    utc = aware.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != naive:  # skipped by a DST change
        raise BadTime(raw)
    return utc


def local_input(value: str | None, tz: ZoneInfo) -> str:
    """An API timestamp as a datetime-local input's value in ``tz`` (``YYYY-MM-DDTHH:MM``)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def month_opens(month: str, tz: ZoneInfo) -> str:
    """When the menu's month (a UTC month, as the API counts it) begins, in local time."""
    start, _ = month_window(month)
    return start.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@dataclass
class Read:
    """What a form's job fields made: the API bodies, or what is wrong (each naming its row
    and field, in the person's language) and the fields that are wrong (``name-row``)."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bad: set[str] = field(default_factory=set)


def _name(lang: Lang, key: str, row: int | None) -> str:
    label = text(lang, f"pub_{key}")
    return label if row is None else text(lang, "pub_row_field", row=row + 1, field=label)


def read_job(
    f: dict[str, str], suffix: str, tz: ZoneInfo, lang: Lang, row: int | None, out: Read
) -> dict[str, Any] | None:
    """One job from the fields ``<name><suffix>`` of a form, as tasks' MenuJob, or None with
    what is wrong added to ``out``."""

    def got(name: str) -> str:
        return f.get(f"{name}{suffix}", "").strip()

    def wrong(name: str, key: str, **values: object) -> None:
        out.errors.append(text(lang, key, field=_name(lang, name, row), **values))
        out.bad.add(f"{name}{suffix}")

    before = len(out.errors)
    title = got("title")
    if not title:
        wrong("title", "pub_missing")
    category = got("category") or "other"
    if not _CATEGORY.fullmatch(category):
        wrong("category", "pub_missing")
    numbers: dict[str, int] = {}
    for name in ("points", "capacity"):
        raw = got(name)
        if not raw and name == "capacity":
            numbers[name] = 1
        elif _INT.fullmatch(raw) and int(raw) >= 1:
            numbers[name] = int(raw)
        else:
            wrong(name, "pub_not_whole")
    times: dict[str, datetime] = {}
    for name in ("starts", "ends"):
        raw = got(name)
        if not raw:
            wrong(name, "pub_missing")
            continue
        try:
            times[name] = to_utc(raw, tz)
        except BadTime:
            wrong(name, "pub_bad_time")
    if len(times) == 2 and times["ends"] <= times["starts"]:
        wrong("ends", "pub_end_before_start")
    if len(got("place")) > PLACE_CHARS:
        wrong("place", "pub_too_long", n=PLACE_CHARS)
    verification = got("verification") or "officer"
    if verification not in VERIFICATIONS:
        wrong("verification", "pub_missing")
    if len(out.errors) > before:
        return None
    job: dict[str, Any] = {
        "title": title,
        "category": category,
        "points": numbers["points"],
        "capacity": numbers["capacity"],
        "starts_at": times["starts"].isoformat(),
        "ends_at": times["ends"].isoformat(),
        "verification": verification,
    }
    if got("place"):
        job["place"] = {"address": got("place")}
    return job


def read_rows(f: dict[str, str], month: str, tz: ZoneInfo, lang: Lang) -> Read:
    """The menu form's rows ``0 .. ROWS-1`` (an empty one ignored) as the jobs of
    ``POST /v1/menus`` for ``month``, or every field that is wrong."""
    out = Read()
    if not is_month(month):
        out.errors.append(text(lang, "pub_missing", field=text(lang, "month")))
        out.bad.add("month")
        return out
    start, end = month_window(month)
    for row in range(ROWS):
        suffix = f"-{row}"
        if not any(f.get(f"{name}{suffix}", "").strip() for name in _TYPED):
            continue
        job = read_job(f, suffix, tz, lang, row, out)
        if job is None:
            continue
        starts = datetime.fromisoformat(job["starts_at"])
        if not start <= starts < end:  # the API's month: the UTC month it starts in
            out.errors.append(
                text(
                    lang,
                    "pub_outside_month",
                    field=_name(lang, "starts", row),
                    month=month,
                    opens=month_opens(month, tz),
                    closes=month_opens(_next(month), tz),
                )
            )
            out.bad.add(f"starts{suffix}")
            continue
        out.jobs.append(job)
    if not out.jobs and not out.errors:
        out.errors.append(text(lang, "pub_no_rows"))
        out.bad.add("title-0")
    return out


def _next(month: str) -> str:
    y, m = map(int, month.split("-"))
    return f"{y + (m == 12):04d}-{m % 12 + 1:02d}"


def short(value: str, chars: int) -> str:
    return value if len(value) <= chars else value[: chars - 1] + "…"


def _lang(request: Request) -> Lang:
    return "en" if request.cookies.get("lang") == "en" else "zh"


def _this_month(tz: ZoneInfo) -> str:
    return datetime.now(UTC).astimezone(tz).strftime("%Y-%m")


async def job_choices(pages: Pages, request: Request) -> tuple[ZoneInfo, list[dict[str, str]]]:
    """The organisation's zone and its job categories (built in first), for a job form."""
    org = await pages.call(request, "tasks", "GET", "/v1/organisation")
    lang = _lang(request)
    found = await pages.items(
        request, "tasks", "/v1/categories", params={"limit": CATEGORIES_SHOWN}
    )
    categories = [
        {
            "code": c["code"],
            "label": short(
                (c.get("label_en") if lang == "en" else c.get("label_zh")) or c["label"],
                CATEGORY_LABEL_CHARS,
            ),
        }
        for c in found
    ]
    return zone(org.get("timezone")), categories


def add_publish_pages(app: FastAPI, pages: Pages, page: Callable[[Handler], Handler]) -> None:
    @app.get("/officer/menu", response_class=HTMLResponse, summary="Publish the month's menu")
    @page
    async def menu_form(
        request: Request,
        community: str | None = None,
        month: str | None = None,
        done: str | None = None,
        n: int = 0,
    ) -> Response:
        pages.need(request, "officer", "admin")
        typed = {}
        if community and _ID.fullmatch(community):
            typed["community"] = community
        if month and is_month(month):
            typed["month"] = month
        return await _menu(request, typed=typed, notice=done, published=max(0, min(n, ROWS)))

    async def _menu(
        request: Request,
        *,
        typed: dict[str, str],
        notice: str | None = None,
        published: int = 0,
        errors: list[str] | None = None,
        bad: set[str] | None = None,
        status: int = 200,
    ) -> Response:
        pages.need(request, "officer", "admin")
        tz, categories = await job_choices(pages, request)
        communities = [
            {"id": c["id"], "name": short(c["name"], COMMUNITY_NAME_CHARS)}
            for c in await pages.items(request, "tasks", "/v1/communities", params={"limit": 1000})
        ]
        month = typed.get("month") or _this_month(tz)
        return pages.render(
            request,
            "officer_menu.html",
            status=status,
            here="/officer/menu",  # the language switch after a refused POST comes back here
            communities=communities,
            categories=categories,
            verifications=VERIFICATIONS,
            rows=range(ROWS),
            typed={**typed, "month": month},
            tz=tz.key,
            opens=month_opens(month, tz) if is_month(month) else "",
            notice=notice,
            published=published,
            errors=errors or [],
            bad=bad or set(),
        )

    @app.post("/officer/menu", response_class=HTMLResponse, summary="Publish the menu (officer)")
    @page
    async def publish(request: Request) -> Response:
        f = await pages.form(request)
        pages.need(request, "officer", "admin")
        lang = _lang(request)
        community, month = f.get("community", "").strip(), f.get("month", "").strip()
        tz, _ = await job_choices(pages, request)
        read = read_rows(f, month, tz, lang)
        if not _ID.fullmatch(community):
            read.errors.insert(0, text(lang, "pub_missing", field=text(lang, "community")))
            read.bad.add("community")
        if read.errors:
            return await _menu(request, typed=f, errors=read.errors, bad=read.bad, status=422)
        try:
            made = await pages.call(
                request,
                "tasks",
                "POST",
                "/v1/menus",
                json={"community_id": community, "month": month, "jobs": read.jobs},
            )
        except ApiError as e:
            if e.status >= 500:
                raise
            return await _menu(request, typed=f, errors=[e.detail], status=e.status)
        return pages.redirect(
            request,
            f"/officer/menu?done=published&n={len(made)}&community={quote(community)}"
            f"&month={month}",
        )
