"""The event contracts: every schema compiles, the examples agree with it, and the events the
services build are valid (the services' models and the schemas agree)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from jifen.kernel.contracts import MAX_EVENT_BYTES, Contracts, ContractViolation
from jifen.kernel.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
EXAMPLES = sorted((SCHEMAS / "examples").glob("*/*.json"))


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return Contracts(SCHEMAS)


def test_every_event_type_has_a_schema_named_after_it(contracts: Contracts) -> None:
    for path in (SCHEMAS / "events").glob("*.schema.json"):
        doc = orjson.loads(path.read_bytes())
        assert doc["$id"] == f"urn:jifen:schema:{path.name.removesuffix('.schema.json')}"
        assert doc["additionalProperties"] is False
    assert "jifen.tasks.completion.verified.v1" in contracts.event_types


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples(contracts: Contracts, path: Path) -> None:
    event = orjson.loads(path.read_bytes())
    assert event["type"] == path.parent.name
    if path.name.startswith("valid"):
        contracts.validate(event)
    else:
        with pytest.raises(ContractViolation):
            contracts.validate(event)


def test_there_is_a_valid_and_an_invalid_example_per_type(contracts: Contracts) -> None:
    for t in contracts.event_types:
        names = [p.name for p in EXAMPLES if p.parent.name == t]
        assert any(n.startswith("valid") for n in names), t
        assert any(n.startswith("invalid") for n in names), t


def test_decode_refuses_what_is_not_an_event(contracts: Contracts) -> None:
    for raw, reason in [
        (None, "empty"),
        (b"[1]", "not a JSON object"),
        (b"{", "not JSON"),
        (b" " * (MAX_EVENT_BYTES + 1), "exceeds"),
    ]:
        with pytest.raises(ContractViolation, match=reason):
            contracts.decode(raw)
    event = orjson.loads(
        (
            SCHEMAS / "examples" / "jifen.tasks.completion.verified.v1" / "valid-credit.json"
        ).read_bytes()
    )
    with pytest.raises(ContractViolation, match="unknown event type"):
        contracts.validate(
            {
                **event,
                "type": "jifen.tasks.thing.happened.v9",
                "dataschema": "urn:jifen:schema:jifen.tasks.thing.happened.v9",
            }
        )
    with pytest.raises(ContractViolation, match="dataschema"):
        contracts.validate({**event, "dataschema": "urn:jifen:schema:other"})
    with pytest.raises(ContractViolation, match="envelope"):
        contracts.validate({**event, "id": str(uuid.uuid4()).upper()})
