"""The fast acceptance check in front of fastjsonschema (kernel/contracts.py): it covers every
schema we have, accepts the valid examples, and never accepts anything fastjsonschema refuses —
checked on the examples and on many mutations of them (wrong types, near-miss strings, a
trailing newline, bools for integers, missing and extra keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jifen.kernel.contracts import Contracts, ContractViolation, fast_check, schema_uri
from jifen.kernel.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
SCHEMA_FILES = [SCHEMAS / "envelope.schema.json", *sorted((SCHEMAS / "events").glob("*.json"))]
EXAMPLES = sorted((SCHEMAS / "examples").glob("*/*.json"))
VALID = [p for p in EXAMPLES if p.name.startswith("valid")]
CONTRACTS = Contracts(SCHEMAS)


def full_accepts(event: Any) -> bool:
    """What ``Contracts.validate`` decided before the fast check: fastjsonschema alone."""
    try:
        CONTRACTS._envelope(event)
        check = CONTRACTS._data[event["type"]]
        if event.get("dataschema") != schema_uri(event["type"]):
            return False
        check(event["data"])
    except (fastjsonschema.JsonSchemaException, KeyError):
        return False
    return True


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_schema_has_a_fast_check(path: Path) -> None:
    assert fast_check(orjson.loads(path.read_bytes())) is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_agree(path: Path) -> None:
    event = orjson.loads(path.read_bytes())
    assert CONTRACTS._accepts(event) is path.name.startswith("valid")
    if not path.name.startswith("valid"):  # refused with fastjsonschema's reason, as before
        with pytest.raises(ContractViolation):
            CONTRACTS.validate(event)


def test_unsupported_keywords_mean_no_fast_check() -> None:
    for schema in [
        {"type": "object", "properties": {"a": {"type": "number"}}},
        {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}},
        {"type": "object", "properties": {"a": {"enum": [1, 2]}}},
        {"type": "object", "properties": {"a": {"minimum": 1}}},
        {"type": "object", "properties": {"a": {"type": "integer", "exclusiveMinimum": 1}}},
        {"type": "object", "properties": {"a": {"type": "array"}}},
        {"type": "object", "properties": {"a": {"type": "object", "required": ["b"]}}},
        {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "object", "required": ["b"], "properties": {}},
        {"anyOf": [{"type": "object"}]},
    ]:
        assert fast_check(schema) is None, schema


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.sampled_from([0, 1, -1, 10**6, 10**6 + 1, 10**9, 10**9 + 1, -(10**9) - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, 0.0, 5.0, -3.0])
    | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


def near_misses(value: str) -> list[str]:
    return [
        value + "\n",
        value + "x",
        value[:-1],
        value.upper(),
        "\n" + value,
        value + " ",
        value * 3,
        "",
        value.replace("-", "_"),
        value.replace("Z", "+00:00"),
    ]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(draw(st.sampled_from(VALID)).read_bytes())
    where = draw(st.sampled_from(["envelope", "data"]))
    target = (
        event if where == "envelope" or not isinstance(event.get("data"), dict) else event["data"]
    )
    keys = sorted(target)
    how = draw(st.sampled_from(["replace", "near", "delete", "add"]))
    key = draw(st.sampled_from(keys))
    if how == "replace":
        target[key] = draw(json_values)
    elif how == "near" and isinstance(target[key], str):
        target[key] = draw(st.sampled_from(near_misses(target[key])))
    elif how == "near" and isinstance(target[key], int):
        target[key] = draw(st.sampled_from([True, False, float(target[key]), -target[key], 0]))
    elif how == "delete":
        del target[key]
    else:
        target[draw(st.text(max_size=12))] = draw(json_values)
    return event


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_check_never_accepts_what_the_full_validation_refuses(event: dict[str, Any]) -> None:
    if CONTRACTS._accepts(event):
        assert full_accepts(event), event


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_fast_check_is_sound_on_arbitrary_values(path: Path, value: Any) -> None:
    schema = orjson.loads(path.read_bytes())
    fast, full = fast_check(schema), fastjsonschema.compile(schema)
    assert fast is not None
    if fast(value):
        full(value)
