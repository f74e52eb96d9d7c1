"""The ledger events the worker builds without validating each one (handlers/ledger.py): why that is
safe. Every field they copy from a posting is constrained by the incoming contract at least
as tightly as by ``jifen.points.entry.appended.v1``; every field they compute is valid by
construction; and the events built for every kind of posting validate in full."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.kernel.contracts import Contracts, ContractViolation, isoformat, schema_uri
from jifen.kernel.settings import REPO_ROOT
from jifen.points.domain.ledger import (
    ADJUSTMENT_TYPE,
    EVENT_KINDS,
    Head,
    Posting,
    adjustment,
    plan_batch,
    posting_from_event,
)
from jifen.points.handlers.ledger import (
    check_sample,
    ledger_event_id,
    ledger_event_unchecked,
)

SCHEMAS = REPO_ROOT / "schemas"
LEDGER = "jifen.points.entry.appended.v1"
# posting fields copied verbatim into the ledger event's data
COPIED = ("account_id", "org_id", "category", "job_id", "completion_id", "redemption_id")
T0 = datetime(2026, 11, 1, 3, 0, 0, 123456, tzinfo=UTC)


def schema(event_type: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        (SCHEMAS / "events" / f"{event_type}.schema.json").read_bytes()
    )
    return doc


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return Contracts(SCHEMAS)


@pytest.mark.parametrize("event_type", [*EVENT_KINDS, ADJUSTMENT_TYPE])
def test_incoming_contracts_constrain_copied_fields_as_tightly(event_type: str) -> None:
    ledger = schema(LEDGER)["properties"]
    incoming = schema(event_type)
    for f in COPIED:
        if f not in incoming["properties"]:
            continue  # the posting carries None, which the ledger schema allows for these
        theirs, ours = incoming["properties"][f], ledger[f]
        assert theirs.get("pattern") == ours.get("pattern"), (event_type, f)
        assert theirs["type"] in ("string", ["string"]), (event_type, f)
    for f in ("account_id", "org_id"):  # required in the ledger event: required coming in
        assert f in incoming["required"], (event_type, f)
    amount = ledger["amount"]
    value = incoming["properties"].get("points") or incoming["properties"]["amount"]
    assert value["type"] == "integer"
    assert amount["minimum"] <= -value["maximum"] and value["maximum"] <= amount["maximum"]
    assert value.get("minimum", 1) >= 1 or value.get("not") == {"const": 0}


def test_the_envelope_fields_are_constrained_as_tightly(contracts: Contracts) -> None:
    # cause_event_id is an incoming event's id: the envelope's pattern is the ledger's
    envelope = orjson.loads((SCHEMAS / "envelope.schema.json").read_bytes())["properties"]
    ledger = schema(LEDGER)["properties"]
    assert envelope["id"]["pattern"] == ledger["cause_event_id"]["pattern"]


@given(st.uuids())
def test_ledger_event_id_is_uuid5(cause: uuid.UUID) -> None:
    want = uuid.uuid5(uuid.NAMESPACE_URL, f"jifen:ledger-entry:{cause}")
    assert ledger_event_id(str(cause)) == str(want)


def incoming(event_type: str, points: int, account: str, category: str) -> dict[str, Any]:
    data: dict[str, Any] = {"account_id": account, "org_id": "org-1", "points": points}
    if "completion" in event_type:
        data.update(completion_id=str(uuid.uuid4()), job_id=str(uuid.uuid4()), category=category)
    else:
        data.update(redemption_id=str(uuid.uuid4()), reward_id=str(uuid.uuid4()))
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "subject": account,
        "time": isoformat(T0),
        "data": data,
    }


accounts = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
categories = st.from_regex(r"\A[a-z][a-z0-9_]{0,39}\Z")


@settings(max_examples=60, deadline=None)
@given(
    account=accounts,
    category=categories,
    points=st.integers(1, 1_000_000),
    seq=st.integers(0, 10**9),
    balance=st.integers(-(2**61), 2**61),
    entry_id=st.integers(1, 2**62),
    late=st.integers(0, 10**6),
)
def test_built_events_validate_for_every_kind(
    contracts: Contracts,
    account: str,
    category: str,
    points: int,
    seq: int,
    balance: int,
    entry_id: int,
    late: int,
) -> None:
    head = Head(account, seq=seq, balance=balance, org_id="org-1")  # (org, account) is the key
    # reversals and refunds need their credit / debit first: plan them in order per reference
    postings: list[Posting] = []
    for made, undone in (
        ("jifen.tasks.completion.verified.v1", "jifen.tasks.completion.revoked.v1"),
        ("jifen.redeem.redemption.placed.v1", "jifen.redeem.redemption.cancelled.v1"),
    ):
        first = incoming(made, points, account, category)
        second = incoming(undone, points, account, category)
        second["data"] = {**first["data"]}
        for ev in (first, second):
            postings.append(posting_from_event(ev, T0 - timedelta(microseconds=late)))
    postings.append(
        adjustment(
            event_id=str(uuid.uuid4()), account_id=account, amount=-points, org_id="o", at=T0
        )
    )
    plan = plan_batch(postings, {("org-1", account): head}, set(), set())
    assert len(plan.entries) == len(postings), plan.refused
    recorded = isoformat(T0 + timedelta(seconds=1))
    events = [ledger_event_unchecked(entry_id + i, e, recorded) for i, e in enumerate(plan.entries)]
    for ev, e in zip(events, plan.entries, strict=True):
        contracts.validate(ev)  # each one, in full
        p, d = e.posting, ev["data"]
        assert ev["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"jifen:ledger-entry:{p.event_id}"))
        assert (ev["subject"], ev["time"], d["recorded_at"]) == (p.account_id, recorded, recorded)
        assert (d["kind"], d["amount"], d["cause_event_id"], d["cause_type"]) == (
            p.kind.value, p.amount, p.event_id, p.event_type,
        )  # fmt: skip
        assert (d["account_seq"], d["balance_after"], d["entry_hash"]) == (
            e.account_seq, e.balance_after, e.entry_hash,
        )  # fmt: skip
        assert d["occurred_at"] == isoformat(p.occurred_at)
        assert all(d[k] == getattr(p, k) for k in COPIED)
    check_sample(contracts, events)


def test_a_wrong_sample_fails_the_batch(contracts: Contracts) -> None:
    ev = incoming("jifen.tasks.completion.verified.v1", 3, "vol-1", "meal")
    (entry,) = plan_batch([posting_from_event(ev, T0)], {}, set(), set()).entries
    good = ledger_event_unchecked(1, entry, isoformat(T0))
    assert good["dataschema"] == schema_uri(LEDGER)
    bad = {**good, "data": {**good["data"], "account_seq": 0}}
    with pytest.raises(ContractViolation, match="account_seq"):
        check_sample(contracts, [bad, good])
