"""schemathesis against each service's OpenAPI document, through the real processes: whatever
it generates (valid and invalid parameters and bodies), no answer is a 5xx and every answer
matches the response schema the document declares. Bounded: a few examples per operation,
derandomized so a failure reproduces."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.config import SchemathesisConfig
from tests.security.matrix import parse_matrix

from jifen.devtools.devstack import DevStack

pytestmark = pytest.mark.e2e

MATRIX = parse_matrix()
# a token of a role the operation admits, so generated requests reach the handler, not the gate
PREFERENCE = ("officer", "admin", "app", "volunteer", "merchant", "auditor", "operator")
ORG = "schemathesis-org"
EXAMPLES = 10


def _schema(service: str) -> Any:
    spec = importlib.import_module(f"jifen.{service}.api.app").build_app().openapi()
    # the coverage phase enumerates every boundary of every parameter (hundreds of requests
    # per operation): too slow for `make test`; examples plus bounded fuzzing instead
    config = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
    return schemathesis.openapi.from_dict(spec, config=config)


def _role_for(service: str, method: str, path: str) -> str:
    row = MATRIX.get((service, method.upper(), path))
    allowed = row.allowed if row else frozenset()  # a method the document does not declare
    return next((r for r in PREFERENCE if r in allowed), "officer")


def _run(stack: DevStack, service: str, case: Any) -> None:
    role = _role_for(service, case.method, case.path)
    token = stack.token(role, f"{role}-fuzz", ORG)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "schemathesis-key"}
    case.call_and_validate(
        base_url=stack.url(service),
        headers=headers,
        checks=[not_a_server_error, response_schema_conformance],
        timeout=20,
    )


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

tasks_schema = _schema("tasks")
points_schema = _schema("points")
redeem_schema = _schema("redeem")


@tasks_schema.parametrize()
@_SETTINGS
def test_tasks_api(case: Any, services: DevStack) -> None:
    _run(services, "tasks", case)


@points_schema.parametrize()
@_SETTINGS
def test_points_api(case: Any, services: DevStack) -> None:
    _run(services, "points", case)


@redeem_schema.parametrize()
@_SETTINGS
def test_redeem_api(case: Any, services: DevStack) -> None:
    _run(services, "redeem", case)
