"""The tasks API documents itself: every operation has a summary, every request body an
example, every path parameter a type, and refusals are described."""

from __future__ import annotations

from typing import Any

from jifen.tasks.api.app import build_app
from jifen.tasks.settings import TasksSettings


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = build_app(TasksSettings()).openapi()
    return spec


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def test_every_operation_is_summarised_and_every_body_has_an_example() -> None:
    spec = _spec()
    missing_examples = []
    ops = 0
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            ops += 1
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
            body = op.get("requestBody")
            if body is None:
                continue
            schema = _resolve(spec, body["content"]["application/json"]["schema"])
            if not schema.get("examples"):
                missing_examples.append(f"{method.upper()} {path}")
    assert ops >= 35
    assert missing_examples == []


def test_the_audit_listing_keeps_its_contract() -> None:
    spec = _spec()
    op = spec["paths"]["/v1/audit/completions"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"cursor", "limit"}
    page = _resolve(spec, op["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(page["properties"]) == {"items", "next_cursor"}
    item = spec["components"]["schemas"]["AuditCompletion"]
    assert set(item["properties"]) == {
        "completion_id",
        "account_id",
        "job_id",
        "points",
        "status",
        "verified_event_id",
        "revoked_event_id",
        "verified_at",
        "revoked_at",
    }
    assert page["examples"][0]["items"][0]["status"] == "verified"


def test_state_changing_operations_document_their_refusals() -> None:
    spec = _spec()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if method == "post" and path.startswith("/v1/") and "{" in path:
                codes = set(op["responses"])
                assert "409" in codes and "404" in codes, f"{method.upper()} {path}: {codes}"
