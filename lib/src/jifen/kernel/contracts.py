"""Event contracts: load the JSON Schemas under ``schemas/``, build and validate CloudEvents.

Every event is validated when produced and when consumed. Validation is compiled once per
schema with fastjsonschema (the hot path of the ledger worker validates tens of thousands
of events a second).
"""

from __future__ import annotations

import re
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


# ---------------------------------------------------------------------------------------------
# A fast acceptance check: the subset of JSON Schema our schemas use, compiled to one Python
# expression per schema. It may refuse more than fastjsonschema (1.0 for an integer, say);
# it never accepts what fastjsonschema refuses — anything it does not model exactly makes
# ``fast_check`` return None and every event goes through fastjsonschema, as before. On the
# ledger worker's hot path it halves the cost of validating an incoming event, because the
# generated validators raise and catch an exception for ``not`` and test each key one by one.

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "examples", "$comment"})
_STRING_KEYS = frozenset({"pattern", "minLength", "maxLength"})
_INTEGER_KEYS = frozenset({"minimum", "maximum", "not"})
# fastjsonschema turns every unescaped $ into \Z (end of string, not before a final newline)
_DOLLAR = re.compile(r"(?<!\\)\$")


class _Unsupported(Exception):
    pass


def _leaf(schema: Any, v: str, names: dict[str, Any]) -> str:
    """The condition (on the variable ``v``) a property's schema stands for."""
    if not isinstance(schema, dict):
        raise _Unsupported
    keys = set(schema) - _ANNOTATIONS
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types
    if "enum" in keys or "const" in keys:
        values = schema["enum"] if "enum" in keys else [schema["const"]]
        if keys - {"enum", "const", "type"} or types not in (None, ["string"]):
            raise _Unsupported
        if not values or not all(isinstance(x, str) for x in values):
            raise _Unsupported
        name = f"E{len(names)}"
        names[name] = frozenset(values)
        return f"(type({v}) is str and {v} in {name})"
    if not types or not set(types) <= {"string", "integer", "object", "null"}:
        raise _Unsupported
    if keys - {"type"} - _STRING_KEYS - _INTEGER_KEYS:
        raise _Unsupported
    if keys & _STRING_KEYS and not set(types) <= {"string", "null"}:
        raise _Unsupported
    if keys & _INTEGER_KEYS and types != ["integer"]:
        raise _Unsupported
    if "object" in types and len(types) > 1:
        raise _Unsupported
    alts = []
    for t in types:
        if t == "null":
            alts.append(f"{v} is None")
        elif t == "object":
            alts.append(f"type({v}) is dict")
        elif t == "integer":
            conds = [f"type({v}) is int"]  # not bool, not 1.0: stricter than fastjsonschema
            for k, op in (("minimum", ">="), ("maximum", "<=")):
                if k in schema:
                    if type(schema[k]) is not int:
                        raise _Unsupported
                    conds.append(f"{v} {op} {schema[k]!r}")
            if "not" in schema:
                if set(schema["not"]) != {"const"} or type(schema["not"]["const"]) is not int:
                    raise _Unsupported
                conds.append(f"{v} != {schema['not']['const']!r}")
            alts.append("(" + " and ".join(conds) + ")")
        else:  # string
            conds = [f"type({v}) is str"]
            for k, op in (("minLength", ">="), ("maxLength", "<=")):
                if k in schema:
                    if type(schema[k]) is not int:
                        raise _Unsupported
                    conds.append(f"len({v}) {op} {schema[k]!r}")
            if "pattern" in schema:
                name = f"P{len(names)}"
                names[name] = re.compile(_DOLLAR.sub(r"\\Z", schema["pattern"])).search
                conds.append(f"{name}({v}) is not None")
            alts.append("(" + " and ".join(conds) + ")")
    return "(" + " or ".join(alts) + ")"


def fast_check(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """A predicate accepting only objects ``fastjsonschema.compile(schema)`` accepts, or None
    when ``schema`` uses anything outside the modelled subset (an object with ``properties``,
    ``required`` and ``additionalProperties: false``; strings with ``pattern``, ``minLength``,
    ``maxLength``; integers with ``minimum``, ``maximum``, ``not: {const}``; string ``enum`` and
    ``const``; ``null``; plain objects)."""
    try:
        keys = set(schema) - _ANNOTATIONS
        if schema.get("type") != "object" or keys - {
            "type",
            "properties",
            "required",
            "additionalProperties",
        }:
            raise _Unsupported
        props: dict[str, Any] = schema.get("properties", {})
        required = list(schema.get("required", []))
        extra = schema.get("additionalProperties", True)
        if extra not in (True, False) or not set(required) <= set(props):
            raise _Unsupported
        names: dict[str, Any] = {"REQUIRED": frozenset(required), "KNOWN": frozenset(props)}
        lines = ["def check(d):", "    if type(d) is not dict: return False"]
        lines.append("    keys = d.keys()")
        lines.append("    if not REQUIRED <= keys: return False")
        if extra is False:
            lines.append("    if not keys <= KNOWN: return False")
        for i, (prop, sub) in enumerate(props.items()):
            cond = _leaf(sub, "v", names)
            names[f"K{i}"] = prop
            if prop in required:
                lines.append(f"    v = d[K{i}]")
                lines.append(f"    if not {cond}: return False")
            else:
                lines.append(f"    if K{i} in d:")
                lines.append(f"        v = d[K{i}]")
                lines.append(f"        if not {cond}: return False")
        lines.append("    return True")
    except _Unsupported:
        return None
    scope = dict(names)
    exec(compile("\n".join(lines), "<fast_check>", "exec"), scope)  # noqa: S102 - our schemas
    check: Callable[[Any], bool] = scope["check"]
    return check


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(ts: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and microseconds, the only time format on the wire."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: Jifen keeps UTC timestamps only")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    _fast_envelope: Callable[[Any], bool] | None = field(init=False, default=None)
    _fast_data: dict[str, tuple[str, Callable[[Any], bool]]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        envelope = orjson.loads((self.schemas_dir / "envelope.schema.json").read_bytes())
        self._envelope = fastjsonschema.compile(envelope)
        self._fast_envelope = fast_check(envelope)
        for path in sorted((self.schemas_dir / "events").glob("*.schema.json")):
            event_type = path.name.removesuffix(".schema.json")
            schema = orjson.loads(path.read_bytes())
            self._data[event_type] = fastjsonschema.compile(schema)
            check = fast_check(schema)
            if check is not None:
                self._fast_data[event_type] = (schema_uri(event_type), check)

    def _accepts(self, event: Any) -> bool:
        """True only if ``validate`` would accept ``event``; False says nothing (the full
        validation then decides, and names the reason)."""
        envelope = self._fast_envelope
        if envelope is None or not envelope(event):
            return False
        data = self._fast_data.get(event["type"])
        return data is not None and event["dataschema"] == data[0] and data[1](event["data"])

    @property
    def event_types(self) -> list[str]:
        return sorted(self._data)

    def validate(self, event: Mapping[str, Any]) -> None:
        if self._accepts(event):
            return  # the fast check accepts only what the full one accepts
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
