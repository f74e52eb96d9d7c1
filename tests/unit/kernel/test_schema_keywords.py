"""The schemas say only what is enforced: they declare draft-07 (what fastjsonschema
implements), every keyword they use is one the validator really enforces (each probed here
with a value it must refuse), and a schema using anything else refuses to load."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest

from jifen.kernel.contracts import (
    ANNOTATIONS,
    DRAFT,
    ENFORCED_KEYWORDS,
    Contracts,
    check_schema,
    schema_keywords,
)
from jifen.kernel.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
ALL = sorted([SCHEMAS / "envelope.schema.json", *(SCHEMAS / "events").glob("*.schema.json")])

# keyword -> (schema, a value it accepts, a value it must refuse)
PROBES: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "type": ({"type": "integer"}, 3, "3"),
    "enum": ({"enum": ["a", "b"]}, "a", "c"),
    "const": ({"const": "1.0"}, "1.0", "1.1"),
    "pattern": ({"pattern": "^[a-z]+$"}, "abc", "ab1"),
    "minLength": ({"minLength": 2}, "ab", "a"),
    "maxLength": ({"maxLength": 2}, "ab", "abc"),
    "minimum": ({"minimum": 1}, 1, 0),
    "maximum": ({"maximum": 5}, 5, 6),
    "exclusiveMinimum": ({"exclusiveMinimum": 1}, 2, 1),
    "exclusiveMaximum": ({"exclusiveMaximum": 5}, 4, 5),
    "multipleOf": ({"multipleOf": 5}, 10, 11),
    "required": ({"required": ["a"]}, {"a": 1}, {"b": 1}),
    "properties": ({"properties": {"a": {"type": "string"}}}, {"a": "x"}, {"a": 1}),
    "additionalProperties": (
        {"properties": {"a": {}}, "additionalProperties": False},
        {"a": 1},
        {"a": 1, "b": 2},
    ),
    "patternProperties": (
        {"patternProperties": {"^n_": {"type": "integer"}}},
        {"n_a": 1},
        {"n_a": "1"},
    ),
    "minProperties": ({"minProperties": 1}, {"a": 1}, {}),
    "maxProperties": ({"maxProperties": 1}, {"a": 1}, {"a": 1, "b": 2}),
    "propertyNames": ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"ab": 1}, {"A": 1}),
    "dependencies": ({"dependencies": {"a": ["b"]}}, {"a": 1, "b": 2}, {"a": 1}),
    "items": ({"items": {"type": "integer"}}, [1, 2], [1, "2"]),
    "minItems": ({"minItems": 1}, [1], []),
    "maxItems": ({"maxItems": 1}, [1], [1, 2]),
    "uniqueItems": ({"uniqueItems": True}, [1, 2], [1, 1]),
    "contains": ({"contains": {"const": 3}}, [1, 3], [1, 2]),
    "not": ({"not": {"type": "string"}}, 1, "1"),
    "allOf": ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 2, 4),
    "anyOf": ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1, 1.5),
    "oneOf": ({"oneOf": [{"minimum": 1}, {"maximum": 3}]}, 5, 2),
    "if": (
        {"if": {"const": "a"}, "then": {"type": "string"}, "else": {"type": "integer"}},
        "a",
        "b",
    ),
    "then": ({"if": {"type": "integer"}, "then": {"minimum": 1}}, 1, 0),
    "else": ({"if": {"type": "integer"}, "else": {"maxLength": 1}}, "a", "ab"),
    "$ref": ({"definitions": {"n": {"type": "integer"}}, "$ref": "#/definitions/n"}, 1, "1"),
    "definitions": (
        {"properties": {"a": {"$ref": "#/definitions/s"}}, "definitions": {"s": {"const": 1}}},
        {"a": 1},
        {"a": 2},
    ),
}


def compiled(schema: dict[str, Any]) -> Any:
    return fastjsonschema.compile({"$schema": DRAFT, **schema})


def test_every_keyword_counted_as_enforced_is_probed() -> None:
    assert set(PROBES) == ENFORCED_KEYWORDS


@pytest.mark.parametrize("keyword", sorted(PROBES))
def test_each_keyword_is_really_enforced(keyword: str) -> None:
    schema, good, bad = PROBES[keyword]
    assert keyword in schema_keywords(schema)
    check = compiled(schema)
    check(good)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        check(bad)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_schema_declares_draft_07_and_uses_only_enforced_keywords(path: Path) -> None:
    schema = orjson.loads(path.read_bytes())
    assert schema["$schema"] == DRAFT
    used = schema_keywords(schema)
    assert used - ENFORCED_KEYWORDS - ANNOTATIONS == set()
    assert used & ENFORCED_KEYWORDS, "a schema that checks nothing"
    check_schema(schema, str(path))


def test_a_2020_12_keyword_draft_07_would_ignore_refuses_to_load(tmp_path: Path) -> None:
    """What the issue found: `dependentRequired` is silently ignored by draft-07."""
    ignored = {"$schema": DRAFT, "dependentRequired": {"a": ["b"]}}
    fastjsonschema.compile(ignored)({"a": 1})  # no error: nothing enforces it
    with pytest.raises(ValueError, match="dependentRequired"):
        check_schema(ignored, "probe")
    nested = {"$schema": DRAFT, "properties": {"x": {"prefixItems": [{"type": "string"}]}}}
    with pytest.raises(ValueError, match="prefixItems"):
        check_schema(nested, "probe")
    with pytest.raises(ValueError, match="declares"):
        check_schema({"$schema": "https://json-schema.org/draft/2020-12/schema"}, "probe")
    # and so does a schemas/ folder holding such a schema
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    target = copy / "events" / "jifen.tasks.completion.verified.v1.schema.json"
    doc = orjson.loads(target.read_bytes())
    doc["dependentRequired"] = {"points": ["job_id"]}
    target.write_bytes(orjson.dumps(doc))
    with pytest.raises(ValueError, match="dependentRequired"):
        Contracts(copy)


def test_property_names_are_not_taken_for_keywords() -> None:
    schema = {"properties": {"pattern": {"type": "string"}, "dependentRequired": {}}}
    assert schema_keywords(schema) == {"properties", "type"}
