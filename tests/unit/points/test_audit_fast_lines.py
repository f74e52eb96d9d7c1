"""The verifier's fast path (``Verifier.feed_lines``, raw export lines) against its general
path (``feed_many``, parsed records): same findings, balances, leaves and totals.

Every test of test_audit_verify.py runs here once more with its records fed as the bytes of
an export file, so each tamper it catches is caught through the fast path too; and entries
with every field changed in type or shape (bool for int, floats, huge integers, null, a field
missing or extra) give the same result both ways.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.points.audit.domain import verify as verify_module
from jifen.points.audit.domain.canonical import leaf_bytes
from jifen.points.audit.domain.merkle import leaf_hash
from jifen.points.audit.domain.verify import EXPORT_FORMAT, LEAF_FIELDS, Result, Verifier
from tests.unit.points.test_audit_verify import *  # noqa: F403 - run them all through lines
from tests.unit.points.test_audit_verify import KEYS, build, checkpoint, posting

_general = Verifier.feed_many


@pytest.fixture(autouse=True)
def through_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Records a test feeds go in as export lines (what ``jifen audit verify`` reads); the
    fast path's own hand-offs to ``feed_many`` reach the general path."""
    inside = [0]
    fast = [0]

    def feed_many(self: Verifier, records: Any) -> None:
        if inside[0]:
            _general(self, records)
            return
        records = list(records)
        try:
            lines = [orjson.dumps(r) + b"\n" for r in records]
        except TypeError:  # not JSON: only the general path can be fed that
            _general(self, records)
            return
        if [orjson.loads(line) for line in lines] != records:
            _general(self, records)
            return
        before = self.entries
        inside[0] += 1
        try:
            self.feed_lines(lines)
        finally:
            inside[0] -= 1
        fast[0] += self.entries - before

    monkeypatch.setattr(Verifier, "feed_many", feed_many)
    yield fast


def general_and_fast(
    lines: list[dict[str, Any]], header: dict[str, Any]
) -> tuple[Result | type[Exception], Result | type[Exception]]:
    """What each path makes of the same lines: its result, or the exception it stopped on
    (a value the general path cannot take, e.g. a number as ``occurred_at``, stops both)."""
    a = Verifier(KEYS)
    a.feed_header(header)
    b = Verifier(KEYS)
    b.feed_header(header)
    try:
        _general(a, copy.deepcopy(lines))
        ra: Result | type[Exception] = a.finish()
    except Exception as exc:
        ra = type(exc)
    try:
        b.feed_lines([orjson.dumps(x) + b"\n" for x in lines])
        rb: Result | type[Exception] = b.finish()
    except Exception as exc:
        rb = type(exc)
    return ra, rb


def same(a: Result | type[Exception], b: Result | type[Exception]) -> None:
    if not isinstance(a, Result) or not isinstance(b, Result):
        assert a == b
        return
    assert a.findings == b.findings
    assert a.faults == b.faults
    assert (a.tree_size, a.entries_checked, a.redacted, a.root, a.leaves) == (
        b.tree_size,
        b.entries_checked,
        b.redacted,
        b.root,
        b.leaves,
    )
    assert a.monthly == b.monthly and a.gaps_redacted == b.gaps_redacted
    assert {
        k: (s.seq, s.hash, s.balance, s.earned, s.spent, s.entries, s.min_balance, s.frozen_entries)
        for k, s in a.accounts.items()
    } == {
        k: (s.seq, s.hash, s.balance, s.earned, s.spent, s.entries, s.min_balance, s.frozen_entries)
        for k, s in b.accounts.items()
    }


def ledger_lines(n: int = 12) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from tests.unit.points.test_audit_verify import Kind

    entries = build(
        [posting(f"a{i % 3}", Kind.CREDIT, 5 + i, f"c{i}") for i in range(n - 2)]
        + [posting("a0", Kind.DEBIT, -3, "r1"), posting("a0", Kind.REFUND, 3, "r1")]
    )
    cp = checkpoint(entries)
    lines = [
        {"position": i, "leaf_hash": leaf_hash(leaf_bytes(e)).hex(), "entry": e}
        for i, e in enumerate(entries)
    ]
    header = {"format": EXPORT_FORMAT, "start": 0, "end": n, "checkpoint": cp.to_json()}
    return lines, header


def test_a_clean_export_goes_through_the_fast_path(through_lines: list[int]) -> None:
    lines, header = ledger_lines()
    v = Verifier(KEYS)
    v.feed_header(header)
    v.feed_lines([orjson.dumps(x) + b"\n" for x in lines])
    assert through_lines[0] == 0  # no record was handed to the general path
    assert v.entries == len(lines) and v.finish().ok


def test_the_typed_entry_encodes_as_the_canonical_leaf() -> None:
    lines, _ = ledger_lines()
    for x in lines:
        rec = verify_module._decode_line(orjson.dumps(x))
        assert verify_module._encode(rec.entry) == leaf_bytes(x["entry"])


ODD_VALUES: list[Any] = [
    True,
    False,
    None,
    0,
    -1,
    1.0,
    1.5,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    "",
    "1",
    'é\u2028\x7f😀\\"',
    [],
    {},
    {"a": 1},
]


@pytest.mark.parametrize("field", [*LEAF_FIELDS, "position", "leaf_hash"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_any_value_in_any_field_gives_the_same_result(field: str, value: Any) -> None:
    if field == "position" and type(value) is int and abs(value) > 1000:
        pytest.skip("a far position makes both paths fill the gap up to it (no bound yet)")
    lines, header = ledger_lines()
    for at in (0, 5):
        bad = copy.deepcopy(lines)
        where = bad[at] if field in ("position", "leaf_hash") else bad[at]["entry"]
        where[field] = value
        try:
            orjson.dumps(bad)
        except TypeError:
            continue
        same(*general_and_fast(bad, header))


@pytest.mark.parametrize("field", [*LEAF_FIELDS, "position", "leaf_hash", "entry"])
def test_a_missing_or_extra_field_gives_the_same_result(field: str) -> None:
    lines, header = ledger_lines()
    gone = copy.deepcopy(lines)
    (gone[3] if field in ("position", "leaf_hash", "entry") else gone[3]["entry"]).pop(field)
    same(*general_and_fast(gone, header))
    extra = copy.deepcopy(lines)
    extra[4]["entry"]["extra"] = 1
    extra[6]["note"] = "x"
    same(*general_and_fast(extra, header))


def test_redacted_missing_and_blank_lines_give_the_same_result() -> None:
    lines, header = ledger_lines()
    odd = copy.deepcopy(lines)
    odd[2] = {"position": 2, "leaf_hash": odd[2]["leaf_hash"], "redacted": True}
    odd[7] = {"position": 7, "leaf_hash": odd[7]["leaf_hash"], "missing": True, "entry_id": 8}
    a, b = general_and_fast(odd, header)
    same(a, b)
    v = Verifier(KEYS)
    v.feed_header(header)
    v.feed_lines([orjson.dumps(x) + b"\n" for x in lines[:3]] + [b"\n", b"  \n"])
    assert v.entries == 3


def test_a_line_that_is_not_json_raises_after_the_lines_before_it() -> None:
    lines, header = ledger_lines()
    v = Verifier(KEYS)
    v.feed_header(header)
    with pytest.raises(orjson.JSONDecodeError):
        v.feed_lines([orjson.dumps(lines[0]), b'{"position": 1, "leaf_hash": "\\ud800"}'])
    assert v.entries == 1


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["swap", "drop", "dup", "amount", "seq", "prev", "kind", "cause"]),
            st.integers(0, 11),
        ),
        max_size=3,
    )
)
def test_random_tampering_gives_the_same_result(ops: list[tuple[str, int]]) -> None:
    lines, header = ledger_lines()
    bad = copy.deepcopy(lines)
    for op, i in ops:
        i %= len(bad)
        e = bad[i].get("entry")
        if op == "swap" and i + 1 < len(bad):
            bad[i], bad[i + 1] = bad[i + 1], bad[i]
        elif op == "drop" and len(bad) > 1:
            del bad[i]
        elif op == "dup":
            bad.insert(i, copy.deepcopy(bad[i]))
        elif e is not None and op == "amount":
            e["amount"] += 1
        elif e is not None and op == "seq":
            e["account_seq"] += 1
        elif e is not None and op == "prev":
            e["prev_hash"] = "f" * 64
        elif e is not None and op == "kind":
            e["kind"] = "debit"
        elif e is not None and op == "cause":
            e["cause_event_id"] = bad[0]["entry"]["cause_event_id"] if "entry" in bad[0] else "x"
    same(*general_and_fast(bad, header))
