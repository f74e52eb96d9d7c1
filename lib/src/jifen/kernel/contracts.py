"""Event contracts: load the JSON Schemas under ``schemas/``, build and validate CloudEvents.

Every event is validated when produced and when consumed. Validation is compiled once per
schema with fastjsonschema (the hot path of the ledger worker validates tens of thousands
of events a second).

fastjsonschema implements JSON Schema draft-07, so that is the draft the schemas declare, and
they may use only the keywords listed in ``ENFORCED_KEYWORDS`` (each proved enforced by
tests/unit/kernel/test_schema_keywords.py) and the annotations in ``ANNOTATIONS``. A schema that
declares another draft or uses any other keyword (2020-12's ``dependentRequired``, say, which
draft-07 would silently ignore) refuses to load: a rule nobody enforces is never written down.
A 2020-12 validator (``jsonschema``) was measured at about 8 times the CPU per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

SPEC_VERSION = "1.0"
# Bound on one event's encoded size: anything larger is dead-lettered unread.
MAX_EVENT_BYTES = 64 * 1024


class ContractViolation(ValueError):
    """An event does not match its contract; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


DRAFT = "http://json-schema.org/draft-07/schema#"
# validation keywords of draft-07 that fastjsonschema enforces (each one probed by a test)
ENFORCED_KEYWORDS = frozenset(
    {
        "type", "enum", "const",
        "pattern", "minLength", "maxLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "required", "properties", "additionalProperties", "patternProperties",
        "minProperties", "maxProperties", "propertyNames", "dependencies",
        "items", "minItems", "maxItems", "uniqueItems", "contains",
        "not", "allOf", "anyOf", "oneOf", "if", "then", "else",
        "$ref", "definitions",
    }
)  # fmt: skip
# keywords that say something to a reader and nothing to a validator
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default"}
)
# keywords whose value holds named subschemas, lists of subschemas, or one subschema
_NAMED = frozenset({"properties", "patternProperties", "definitions"})
_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_ONE = frozenset(
    {"not", "additionalProperties", "if", "then", "else", "contains", "propertyNames", "items"}
)


def schema_keywords(schema: Any) -> set[str]:
    """Every keyword a schema uses, subschemas included (not property names or values)."""
    found: set[str] = set()
    if not isinstance(schema, dict):
        return found
    for key, value in schema.items():
        found.add(key)
        if key in _NAMED and isinstance(value, dict):
            for sub in value.values():
                found |= schema_keywords(sub)
        elif key in _LISTS and isinstance(value, list):
            for sub in value:
                found |= schema_keywords(sub)
        elif key == "items" and isinstance(value, list):
            for sub in value:
                found |= schema_keywords(sub)
        elif key in _ONE:
            found |= schema_keywords(value)
        elif key == "dependencies" and isinstance(value, dict):
            for sub in value.values():
                found |= schema_keywords(sub)
    return found


def check_schema(schema: Any, where: str) -> None:
    """Refuse a schema this validator would not enforce as written (see the module's doc)."""
    if not isinstance(schema, dict) or schema.get("$schema") != DRAFT:
        declared = schema.get("$schema") if isinstance(schema, dict) else None
        raise ValueError(f"{where}: declares {declared!r}; Jifen's schemas declare {DRAFT}")
    unknown = schema_keywords(schema) - ENFORCED_KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(
            f"{where}: uses {sorted(unknown)}, which fastjsonschema (draft-07) would not "
            "enforce; use draft-07 keywords (jifen.kernel.contracts.ENFORCED_KEYWORDS)"
        )


def compile_schema(path: Path) -> Callable[[Any], Any]:
    schema = orjson.loads(path.read_bytes())
    check_schema(schema, str(path))
    return fastjsonschema.compile(schema)


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(ts: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and microseconds, the only time format on the wire."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: Jifen keeps UTC timestamps only")
    utc = ts.astimezone(UTC)
    if utc.year < 1000:  # strftime's %Y does not pad such a year; kept as it always wrote it
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # the same text as that strftime, a fifth of its cost (the ledger formats every event time)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def schema_uri(event_type: str) -> str:
    return f"urn:jifen:schema:{event_type}"


@dataclass
class Contracts:
    """The compiled schemas of one ``schemas/`` folder."""

    schemas_dir: Path
    _envelope: Callable[[Any], Any] = field(init=False)
    _data: dict[str, Callable[[Any], Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._envelope = compile_schema(self.schemas_dir / "envelope.schema.json")
        for path in sorted((self.schemas_dir / "events").glob("*.schema.json")):
            event_type = path.name.removesuffix(".schema.json")
            self._data[event_type] = compile_schema(path)

    @property
    def event_types(self) -> list[str]:
        return sorted(self._data)

    def validate(self, event: Mapping[str, Any]) -> None:
        try:
            self._envelope(event)
        except fastjsonschema.JsonSchemaException as exc:
            raise ContractViolation(f"envelope: {getattr(exc, 'message', exc)}") from None
        event_type = event["type"]
        check = self._data.get(event_type)
        if check is None:
            raise ContractViolation(f"unknown event type {event_type!r}")
        if event.get("dataschema") != schema_uri(event_type):
            raise ContractViolation(
                f"dataschema {event.get('dataschema')!r} does not name {event_type!r}"
            )
        try:
            check(event["data"])
        except fastjsonschema.JsonSchemaException as exc:
            raise ContractViolation(f"{event_type}: {getattr(exc, 'message', exc)}") from None

    def new_event(
        self,
        event_type: str,
        *,
        source: str,
        subject: str,
        data: Mapping[str, Any],
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
    ) -> dict[str, Any]:
        """Build a CloudEvents 1.0 envelope and validate it before anyone sees it."""
        event = envelope(
            event_type,
            source=source,
            subject=subject,
            data=dict(data),
            event_id=str(event_id or uuid.uuid4()),
            time=isoformat(time or utcnow()),
        )
        self.validate(event)
        return event

    def decode(self, raw: bytes | None) -> dict[str, Any]:
        """Parse and validate one record value; raise ContractViolation with the reason."""
        if raw is None:
            raise ContractViolation("empty record value")
        if len(raw) > MAX_EVENT_BYTES:
            raise ContractViolation(f"event of {len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ContractViolation(f"not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise ContractViolation("event is not a JSON object")
        self.validate(event)
        return event


def envelope(
    event_type: str, *, source: str, subject: str, data: dict[str, Any], event_id: str, time: str
) -> dict[str, Any]:
    """The CloudEvents 1.0 envelope :meth:`Contracts.new_event` builds, **without validating**.

    Only for producers that build many events of one type from values already constrained by
    a validated contract (the ledger worker's ``entry.appended`` events from validated incoming
    events): they validate a sample of each batch in full, and a contract test proves the rest
    valid. Everything else uses :meth:`Contracts.new_event`.
    """
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "dataschema": schema_uri(event_type),
        "data": data,
    }


def encode(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event)
