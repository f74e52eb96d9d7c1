"""Strict, cheap decoding of the events the ledger applies: a record's bytes to a ``Posting``
in one msgspec pass, with the acceptance of the JSON-Schema contracts (schemas/) or stricter.

The ledger worker decodes tens of thousands of events a second. The general path parses the
JSON into dicts, validates them with the compiled schemas (``jifen.kernel.contracts``), then
builds the posting (``domain.ledger.posting_from_event``). Here msgspec decodes straight into
typed structs **built from the same schema files**: each property becomes a field with the
schema's type, ``pattern`` (its ``$`` made an end of string, as fastjsonschema does),
``minLength``/``maxLength``, ``minimum``/``maximum`` or ``const``; ``required`` the fields
without a default; ``additionalProperties: false`` unknown fields refused. A schema using
any other keyword gets no fast decoder (its events all take the general path).

:meth:`FastDecoder.posting` returns the posting of an event it accepts, or ``None`` for
anything else: then the caller runs the general path, which accepts it or names why not,
with the reason the dead-letter topic has always carried. So what is accepted is decided by
the contracts exactly as before; the fast path is only a subset that is cheaper to check
(msgspec refuses, for instance, ``1.0`` or ``true`` where an integer is due, which the
general path then judges), and it gives the same posting for every event it accepts
(tests/unit/points/test_fast_event_decoder.py feeds both the same corpus).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec

from jifen.kernel.contracts import MAX_EVENT_BYTES, parse_time, schema_uri
from jifen.points.domain.ledger import EVENT_KINDS, Posting

# fastjsonschema matches ``pattern`` with ``re.search`` after turning every unescaped ``$``
# into ``\Z`` (Python's ``$`` would also match before a final newline): the same here
_DOLLAR = re.compile(r"(?<!\\)\$")
# what a property's schema may say for a fast field; anything else: no fast decoder
_FIELD_KEYWORDS = frozenset(
    {"type", "pattern", "minLength", "maxLength", "minimum", "maximum", "const"}
)
_NOTES = frozenset({"description", "title", "$comment", "examples", "default"})
_OBJECT_KEYWORDS = frozenset({"type", "required", "properties", "additionalProperties"})
_I64 = (-(2**63), 2**63 - 1)


class Unsupported(ValueError):
    """A schema says something this decoder does not check: its events take the general
    path."""


def _whole_value_pattern(pattern: str) -> str | None:
    """``X`` when ``pattern`` is ``^X$`` and ``X`` can be checked in a group between
    separators with the same result (no other anchor, boundary, lookaround, backreference or
    top-level ``|``); else None (msgspec then checks the pattern itself)."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    inner = pattern[1:-1]
    if "$" in inner:  # fastjsonschema turns even a [$] into \Z: leave those to msgspec
        return None
    depth, in_class, escaped = 0, False, False
    for ch in inner:
        if escaped:
            if ch.isdigit() or ch in "AZbBz":
                return None
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "^":
            return None
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return None
    return inner if depth == 0 and not in_class and not escaped and "(?" not in inner else None


def _field_type(
    prop: Mapping[str, Any], where: str, patterns: list[tuple[str, str]] | None = None
) -> Any:
    said = set(prop) - _NOTES
    if said - _FIELD_KEYWORDS:
        raise Unsupported(f"{where}: {sorted(said - _FIELD_KEYWORDS)}")
    if "const" in prop:
        value = prop["const"]
        if said != {"const"} or type(value) is not str:
            raise Unsupported(f"{where}: const {value!r}")
        return Literal[value]
    kind = prop.get("type")
    if kind == "string":
        if said - {"type", "pattern", "minLength", "maxLength"}:
            raise Unsupported(f"{where}: {sorted(said)}")
        meta: dict[str, Any] = {}
        inner = _whole_value_pattern(prop["pattern"]) if "pattern" in prop else None
        if inner is not None and patterns is not None:
            patterns.append((where.rpartition(".")[2], inner))  # checked with the others
        elif "pattern" in prop:
            meta["pattern"] = _DOLLAR.sub(r"\\Z", prop["pattern"])
        if "minLength" in prop:
            meta["min_length"] = prop["minLength"]
        if "maxLength" in prop:
            meta["max_length"] = prop["maxLength"]
        return Annotated[str, msgspec.Meta(**meta)] if meta else str
    if kind == "integer":
        if said - {"type", "minimum", "maximum"}:
            raise Unsupported(f"{where}: {sorted(said)}")
        low, high = prop.get("minimum", _I64[0]), prop.get("maximum", _I64[1])
        if type(low) is not int or type(high) is not int:
            raise Unsupported(f"{where}: bounds {low!r}..{high!r}")
        # msgspec's integers are 64-bit at most: a larger one takes the general path
        return Annotated[int, msgspec.Meta(ge=max(low, _I64[0]), le=min(high, _I64[1]))]
    raise Unsupported(f"{where}: type {kind!r}")


def _fields(
    schema: Mapping[str, Any],
    where: str,
    patterns: list[tuple[str, str]],
    overrides: Mapping[str, Any] | None = None,
) -> list[tuple[str, Any] | tuple[str, Any, Any]]:
    """msgspec fields for an object schema; the patterns of required text fields that
    :func:`_whole_value_pattern` takes go to ``patterns`` instead, checked in one match."""
    said = set(schema) - _NOTES - {"$schema", "$id"}
    if said - _OBJECT_KEYWORDS or schema.get("type") != "object":
        raise Unsupported(f"{where}: {sorted(said - _OBJECT_KEYWORDS)} / {schema.get('type')}")
    if schema.get("additionalProperties") is not False:
        raise Unsupported(f"{where}: unknown fields allowed")
    required = set(schema.get("required", ()))
    props = schema.get("properties", {})
    if required - set(props):
        raise Unsupported(f"{where}: requires {sorted(required - set(props))}, not described")
    overrides = overrides or {}
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, prop in props.items():
        if name in overrides:
            t = overrides[name]
        else:
            t = _field_type(prop, f"{where}.{name}", patterns if name in required else None)
        # an optional property may be absent (None here), never null: its type has no None
        fields.append((name, t) if name in required else (name, t, None))
    # msgspec wants the fields without a default first; keyword construction only, so the
    # order says nothing else
    fields.sort(key=lambda f: len(f))
    return fields


_SEP = "\x1f"  # joins the values whose patterns are checked in one match


def _getter(names: list[str]) -> Any:
    """The named attributes of a struct, as a tuple (also for none or one)."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names)


class FastDecoder:
    """One msgspec decoder per applied event type, built from the contracts' schemas."""

    def __init__(self, envelope: Mapping[str, Any], events: Mapping[str, Mapping[str, Any]]):
        # the envelope with ``data`` kept raw: its struct depends on ``type``
        outer: list[tuple[str, str]] = []
        self._envelope = msgspec.json.Decoder(
            msgspec.defstruct(
                "Envelope",
                _fields(envelope, "envelope", outer, {"data": msgspec.Raw}),
                forbid_unknown_fields=True,
            )
        ).decode
        self._data: dict[str, tuple[Any, Any, int, Any, Any, Any]] = {}
        self.unsupported: dict[str, str] = {}
        for event_type, (kind, sign, _) in EVENT_KINDS.items():
            schema = events.get(event_type)
            if schema is None:
                self.unsupported[event_type] = "no schema"
                continue
            inner: list[tuple[str, str]] = []
            try:
                struct = msgspec.defstruct(
                    "Data", _fields(schema, event_type, inner), forbid_unknown_fields=True
                )
            except Unsupported as exc:
                self.unsupported[event_type] = str(exc)
                continue
            # every whole-value pattern of the event in one regex match over its values
            # joined by a separator none of them holds (checked: the count of separators)
            both = [*outer, *inner]
            combined = re.compile(_SEP.join(f"(?:{p})" for _, p in both) + r"\Z")
            self._data[event_type] = (
                msgspec.json.Decoder(struct).decode,
                kind,
                sign,
                combined.match,
                _getter([n for n, _ in outer]),
                _getter([n for n, _ in inner]),
            )
        self._uri = {t: schema_uri(t) for t in self._data}

    def posting(self, raw: bytes | None) -> Posting | None:
        """The posting of an event the contracts accept and the ledger applies; ``None``
        when this path cannot tell (the general path then decides, and names any refusal)."""
        if raw is None or len(raw) > MAX_EVENT_BYTES:
            return None
        try:
            env: Any = self._envelope(raw)
            decode, kind, sign, match, outer, inner = self._data[env.type]
            if env.dataschema != self._uri[env.type]:
                return None
            data: Any = decode(env.data)
            values = (*outer(env), *inner(data))
            joined = _SEP.join(values)
            if joined.count(_SEP) != len(values) - 1 or match(joined) is None:
                return None
            # posting_from_event's own refusals: left to it
            if data.account_id != env.subject or data.points <= 0:
                return None
            # a time that matches the pattern but is no date (month 13) raises ValueError
            occurred_at: datetime = parse_time(env.time)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, AttributeError):
            return None
        except ValueError:
            return None
        return Posting(
            event_id=env.id,
            event_type=env.type,
            account_id=data.account_id,
            kind=kind,
            amount=sign * data.points,
            org_id=data.org_id,
            category=getattr(data, "category", None),
            job_id=getattr(data, "job_id", None),
            completion_id=getattr(data, "completion_id", None),
            redemption_id=getattr(data, "redemption_id", None),
            occurred_at=occurred_at,
            reward_id=getattr(data, "reward_id", None),
        )
