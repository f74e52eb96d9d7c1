"""The ledger worker's fast decoder (``jifen.points.domain.events``) against the JSON-Schema
contracts: fed the same corpus of good and bad events, it never takes an event the contracts
(or ``posting_from_event``) refuse, gives the same posting for every event it takes, and takes
every realistic event; the worker's decode dead-letters exactly what it did before, with the
same reasons."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.kernel.consumer import Record
from jifen.kernel.contracts import Contracts, ContractViolation, parse_time
from jifen.kernel.settings import REPO_ROOT
from jifen.points.domain.events import FastDecoder
from jifen.points.domain.ledger import (
    EVENT_KINDS,
    ImpossibleEvent,
    Posting,
    check_clock_skew,
    posting_from_event,
)
from jifen.points.worker import LedgerWorker, fast_decoder

SCHEMAS = REPO_ROOT / "schemas"
CONTRACTS = Contracts(SCHEMAS)
FAST = fast_decoder(CONTRACTS)
SKEW = 300.0


def general(raw: bytes | None) -> Posting | str:
    """What the contracts make of a record value: the posting, or the reason it is refused."""
    try:
        event = CONTRACTS.decode(raw)
        try:
            when = parse_time(event["time"])
        except ValueError as exc:
            return f"bad time: {exc}"
        return posting_from_event(event, when)
    except ContractViolation as exc:
        return exc.reason
    except ImpossibleEvent as exc:
        return f"refused: {exc}"


def dumps(obj: Any) -> bytes:
    """JSON bytes; integers beyond 64 bits too (orjson will not write those)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def uid() -> str:
    return str(uuid.uuid4())


def event(event_type: str, **data: Any) -> dict[str, Any]:
    """A realistic event of each type the ledger applies, as its producer sends it."""
    account = data.pop("account_id", "vol-0001")
    body: dict[str, Any] = {"account_id": account, "org_id": "jiangmen-riders", "points": 40}
    at = "2026-11-15T04:30:00.123456Z"
    if event_type.startswith("jifen.tasks."):
        body.update(
            completion_id=uid(),
            job_id=uid(),
            community_id="penglai-grid",
            category="free_repair_day",
        )
        if event_type.endswith("verified.v1"):
            body.update(verified_by="officer-li", verified_at=at)
        else:
            body.update(revoked_by="officer-li", reason="duplicate photo", revoked_at=at)
    else:
        body.update(redemption_id=uid(), reward_id=uid())
        if event_type.endswith("placed.v1"):
            body.update(placed_at=at)
        else:
            body.update(reason="out of stock 缺货", cancelled_at=at)
    body.update(data)
    return {
        "specversion": "1.0",
        "id": uid(),
        "source": "/jifen/tasks" if event_type.startswith("jifen.tasks.") else "/jifen/redeem",
        "type": event_type,
        "subject": account,
        "time": at,
        "datacontenttype": "application/json",
        "dataschema": f"urn:jifen:schema:{event_type}",
        "data": body,
    }


ODD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    1.0,
    40.0,
    40.5,
    1_000_000,
    1_000_001,
    2**31,
    2**63,
    2**64,
    10**30,
    "",
    "x",
    "x" * 129,
    "x" * 501,
    "١٢٣",  # digits, but not [0-9]
    "VOL-0001",
    "00000000-0000-4000-8000-00000000000A",
    "00000000-0000-4000-8000-000000000001",
    "2026-11-15T04:30:00Z",
    [],
    {},
    {"a": 1},
]
TIMES = [
    "2026-11-15T04:30:00Z",
    "2026-11-15T04:30:00.1Z",
    "2026-11-15T04:30:00.123456789Z",
    "2026-11-15T04:30:00.1234567890Z",
    "2026-11-15T04:30:00z",
    "2026-11-15 04:30:00Z",
    "2026-11-15T04:30:00+08:00",
    "2026-11-15T04:30:00Z\n",
    "2026-13-15T04:30:00Z",
    "2026-02-30T04:30:00Z",
    "2026-11-15T24:00:00Z",
    "2026-11-15T04:30:60Z",
    "0000-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "２０２６-11-15T04:30:00Z",
]


def corpus() -> Iterator[tuple[str, bytes | None]]:
    """Good events of every type, and each one broken in every way we could think of."""
    for event_type in EVENT_KINDS:
        good = event(event_type)
        yield f"{event_type} good", dumps(good)
        for name in [*good, *(f"data.{k}" for k in good["data"])]:
            base, key = (good["data"], name[5:]) if name.startswith("data.") else (good, name)
            gone = copy.deepcopy(good)
            (gone["data"] if base is good["data"] else gone).pop(key)
            yield f"{event_type} without {name}", dumps(gone)
            for value in ODD:
                bad = copy.deepcopy(good)
                (bad["data"] if base is good["data"] else bad)[key] = value
                yield f"{event_type} {name}={value!r}", dumps(bad)
            if isinstance(base[key], str):  # a trailing newline: `$` must not allow it
                bad = copy.deepcopy(good)
                (bad["data"] if base is good["data"] else bad)[key] = base[key] + "\n"
                yield f"{event_type} {name} + newline", dumps(bad)
        for where in ("envelope", "data"):
            extra = copy.deepcopy(good)
            (extra if where == "envelope" else extra["data"])["extra"] = 1
            yield f"{event_type} extra field in {where}", dumps(extra)
        for t in TIMES:
            yield f"{event_type} time {t!r}", dumps({**good, "time": t})
        yield f"{event_type} subject not the account", dumps({**good, "subject": "vol-2"})
        other = next(t for t in EVENT_KINDS if t != event_type)
        yield (
            f"{event_type} dataschema of another",
            dumps({**good, "dataschema": f"urn:jifen:schema:{other}"}),
        )
        yield f"{event_type} typed as another", dumps({**good, "type": other})
        yield (
            f"{event_type} no datacontenttype",
            dumps({k: v for k, v in good.items() if k != "datacontenttype"}),
        )
        raw = dumps(good)
        # duplicate keys: the last one counts for orjson, so it must for the fast path too
        yield f"{event_type} dup points", raw[:-2] + b',"points":0}}'
        yield f"{event_type} dup data", raw[:-1] + b',"data":{}}'
        yield f"{event_type} dup type", raw[:-1] + b',"type":"jifen.tasks.job.published.v1"}'
        yield f"{event_type} padded", b"  " + raw + b"\n"
        yield f"{event_type} trailing garbage", raw + b"x"
        yield f"{event_type} truncated", raw[:-1]
        yield (
            f"{event_type} too big",
            dumps({**good, "data": {**good["data"], "reason": "x" * 70_000}}),
        )
        yield f"{event_type} lone surrogate", raw.replace(b'"vol-0001"', b'"\\ud800"', 1)
        yield f"{event_type} bad utf-8", raw.replace(b"vol-0001", b"vol-\xff001", 1)
    yield (
        "not an event type the ledger applies",
        dumps({**event(next(iter(EVENT_KINDS))), "type": "jifen.tasks.job.published.v1"}),
    )
    for odd in (None, b"", b"null", b"[]", b"1", b'"x"', b"{}", b"\xef\xbb\xbf{}", b"NaN"):
        yield f"raw {odd!r}", odd


CORPUS = list(corpus())


@pytest.mark.parametrize(("name", "raw"), CORPUS, ids=[n for n, _ in CORPUS])
def test_the_fast_decoder_takes_only_what_the_contracts_take_and_gives_the_same_posting(
    name: str, raw: bytes | None
) -> None:
    fast = FAST.posting(raw)
    slow = general(raw)
    if fast is not None:
        assert fast == slow, name
    if name.endswith(" good") or " padded" in name or "no datacontenttype" in name:
        assert isinstance(slow, Posting) and fast == slow, f"{name}: {slow}"


def test_the_corpus_has_both_kinds_and_the_decoder_covers_every_applied_type() -> None:
    outcomes = [isinstance(general(raw), Posting) for _, raw in CORPUS]
    assert sum(outcomes) >= 4 * 10 and outcomes.count(False) > 1000
    assert FAST.unsupported == {}
    assert set(FAST._data) == set(EVENT_KINDS)


def test_a_schema_keyword_it_does_not_check_leaves_that_type_to_the_general_path() -> None:
    envelope = orjson.loads((SCHEMAS / "envelope.schema.json").read_bytes())
    t = "jifen.tasks.completion.verified.v1"
    schema = orjson.loads((SCHEMAS / "events" / f"{t}.schema.json").read_bytes())
    schema["properties"]["points"]["multipleOf"] = 5
    decoder = FastDecoder(envelope, {t: schema})
    assert t in decoder.unsupported
    assert decoder.posting(dumps(event(t))) is None


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.sampled_from(sorted(EVENT_KINDS)),
    field=st.sampled_from(["subject", "id", "time", "source", "account_id", "org_id", "points"]),
    value=st.one_of(
        st.text(max_size=80),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,70}\n?", fullmatch=True),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    ),
)
def test_random_values_are_taken_by_both_or_by_the_contracts_alone(
    event_type: str, field: str, value: Any
) -> None:
    e = event(event_type)
    if field in e:
        e[field] = value
    else:
        e["data"][field] = value
    raw = dumps(e)
    fast = FAST.posting(raw)
    if fast is not None:
        assert fast == general(raw)


def worker() -> LedgerWorker:
    cfg = SimpleNamespace(max_clock_skew_seconds=SKEW, consumer_group="points-ledger")
    return LedgerWorker(cfg, CONTRACTS, None, None, None)  # type: ignore[arg-type]


def old_decode(records: list[Record]) -> tuple[list[Posting], list[tuple[Record, str]]]:
    """The worker's decode before the fast decoder: the contracts on every record."""
    dead: list[tuple[Record, str]] = []
    postings: list[Posting] = []
    now = datetime.now(UTC)
    for record in records:
        try:
            event = CONTRACTS.decode(record.value)
            posting = posting_from_event(event, parse_time(event["time"]))
            check_clock_skew(posting.occurred_at, now, SKEW)
        except ContractViolation as exc:
            dead.append((record, exc.reason))
            continue
        except ImpossibleEvent as exc:
            dead.append((record, f"refused: {exc}"))
            continue
        postings.append(posting)
    return postings, dead


def record(i: int, raw: bytes | None) -> Record:
    # decode reads a record's value only (the offset names it here)
    return SimpleNamespace(offset=i, value=raw)  # type: ignore[return-value]


def test_the_worker_decodes_and_dead_letters_as_before_with_the_same_reasons() -> None:
    future = event(next(iter(EVENT_KINDS)))
    future["time"] = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ancient = {**event(next(iter(EVENT_KINDS))), "time": "1999-12-31T23:59:59Z"}
    # the old decode raised (failing the whole batch) on a time that is no date: skip those
    calendar = {"2026-13-15T04:30:00Z", "2026-02-30T04:30:00Z", "2026-11-15T24:00:00Z"}
    calendar |= {"2026-11-15T04:30:60Z", "0000-01-01T00:00:00Z"}
    raws = [raw for name, raw in CORPUS if not any(t in name for t in calendar)]
    raws += [orjson.dumps(future), orjson.dumps(ancient)]
    records = [record(i, raw) for i, raw in enumerate(raws)]
    decoded = worker().decode(records)
    postings, dead = old_decode(records)
    assert decoded.postings == postings

    # (the skew is in whole seconds, read at each decode's own "now")
    def reasons(dead: list[tuple[Record, str]]) -> list[tuple[int, str]]:
        return [(r.offset, re.sub(r"\d+ s ahead", "N s ahead", why)) for r, why in dead]

    assert reasons(decoded.dead) == reasons(dead)
    assert any("clock skew" in why for _, why in dead) and any("before" in why for _, why in dead)


@pytest.mark.parametrize("when", sorted(t for t in TIMES if t[:4].isdigit() and t[5:7] == "13"))
def test_a_time_that_matches_the_contract_but_is_no_date_is_dead_lettered_not_raised(
    when: str,
) -> None:
    for t in (when, "2026-02-30T04:30:00Z", "2026-11-15T24:00:00Z"):
        e = {**event(next(iter(EVENT_KINDS))), "time": t}
        decoded = worker().decode([record(0, orjson.dumps(e))])
        assert decoded.postings == []
        [(_, why)] = decoded.dead
        assert why.startswith("refused: event time") and "not a valid time" in why
