"""One list convention on every list endpoint (issue 21, part 3; docs/API.md "Lists").

Every GET of the three services that answers many things answers one page of them —
``{"items": [...], "next_cursor": ...}`` — and takes ``limit`` (at most
:data:`jifen.kernel.pages.MAX_LIMIT`) and ``cursor``; none answers a bare JSON array or pages
by other parameters. This reads each service's OpenAPI document, so a new list route that
forgets the convention fails here. (That the cursors page correctly is tested against the
running services in tests/e2e/test_lists.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from jifen.kernel.pages import MAX_LIMIT
from jifen.points.api.app import build_app as points_app
from jifen.points.settings import PointsSettings
from jifen.redeem.api.app import build_app as redeem_app
from jifen.redeem.settings import RedeemSettings
from jifen.tasks.api.app import build_app as tasks_app
from jifen.tasks.settings import TasksSettings

# the other ways lists were once paged: none may come back
OLD_PAGING = {"before", "after", "offset", "page", "page_size", "per_page"}


def _apps() -> dict[str, FastAPI]:
    return {
        "tasks": tasks_app(TasksSettings()),
        "points": points_app(PointsSettings()),
        "redeem": redeem_app(RedeemSettings()),
    }


def _schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _json_200(spec: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    content = op.get("responses", {}).get("200", {}).get("content", {})
    body = content.get("application/json")
    return None if body is None else _schema(spec, body.get("schema", {}))


def _lists(service: str, app: FastAPI) -> tuple[list[str], list[str]]:
    """(the list operations, the operations that break the convention, each with why)"""
    spec = app.openapi()
    lists, broken = [], []
    for path, methods in spec["paths"].items():
        op = methods.get("get")
        if op is None:
            continue
        name = f"{service} GET {path}"
        schema = _json_200(spec, op)
        if schema is None:
            continue
        if schema.get("type") == "array":
            broken.append(f"{name}: answers a bare array, not a page")
            continue
        props = schema.get("properties", {})
        if "items" not in props:
            continue
        lists.append(name)
        params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        if set(props) != {"items", "next_cursor"}:
            broken.append(f"{name}: the page holds {sorted(props)}, not items and next_cursor")
        if _schema(spec, props["items"]).get("type") != "array":
            broken.append(f"{name}: items is not an array")
        limit = params.get("limit", {}).get("schema", {})
        if limit.get("maximum") != MAX_LIMIT or limit.get("minimum") != 1:
            broken.append(f"{name}: limit is not 1..{MAX_LIMIT} ({limit})")
        if "cursor" not in params:
            broken.append(f"{name}: takes no cursor")
        if OLD_PAGING & set(params):
            broken.append(f"{name}: pages by {sorted(OLD_PAGING & set(params))}")
    return lists, broken


@pytest.mark.parametrize("service", ["tasks", "points", "redeem"])
def test_every_list_answers_one_page_shape(service: str) -> None:
    lists, broken = _lists(service, _apps()[service])
    assert broken == []
    # the lists this issue named, and the rest, are all found (a page schema renamed away
    # from `items` would otherwise make this test pass by finding nothing)
    expected = {
        "tasks": {"/v1/jobs", "/v1/completions", "/v1/communities", "/v1/webhooks", "/v1/calls"},
        "points": {"/v1/adjustments", "/v1/accounts/{account_id}/entries", "/v1/audit/keys"},
        "redeem": {"/v1/rewards", "/v1/redemptions", "/v1/merchants", "/v1/audit/redemptions"},
    }[service]
    assert {f"{service} GET {p}" for p in expected} <= set(lists)
    assert len(lists) >= {"tasks": 17, "points": 5, "redeem": 5}[service]


def test_the_convention_is_documented_once() -> None:
    from jifen.kernel.settings import REPO_ROOT

    doc = (REPO_ROOT / "docs/API.md").read_text(encoding="utf-8")
    assert "## Lists" in doc and f"{MAX_LIMIT:,}" in doc and "next_cursor" in doc
