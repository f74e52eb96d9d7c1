"""Authentication from day one: 401 without a valid token, 403 for a wrong role, and the
operational endpoints open on every process."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from jifen.devtools.devstack import DevStack
from jifen.kernel.auth import issue_token
from tests.helpers import Api

pytestmark = pytest.mark.e2e

PROTECTED = [
    ("tasks", "POST", "/v1/jobs"),
    ("tasks", "GET", "/v1/jobs"),
    ("tasks", "POST", f"/v1/completions/{uuid.uuid4()}/verify"),
    ("points", "GET", "/v1/accounts/vol-0001/balance"),
    ("points", "GET", "/v1/accounts/vol-0001/entries"),
    ("redeem", "POST", "/v1/redemptions"),
    ("redeem", "GET", "/v1/rewards"),
]


@pytest.mark.parametrize(("service", "method", "path"), PROTECTED)
async def test_no_token_or_a_bad_one_is_401(
    apis: dict[str, Api], service: str, method: str, path: str
) -> None:
    api = apis[service]
    r = await api.http.request(method, path)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in r.json()["detail"]
    r = await api.http.request(method, path, headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401
    # signed by a key the stack never published
    with tempfile.TemporaryDirectory() as other:
        forged = issue_token(Path(other), subject="officer-li", role="admin", org=api.org)
    r = await api.http.request(method, path, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "unknown signing key" in r.json()["detail"]


async def test_an_expired_token_is_401(apis: dict[str, Api], services: DevStack) -> None:
    token = issue_token(
        services.keys_dir,
        subject="officer-li",
        role="officer",
        org="jiangmen-riders",
        ttl_seconds=-10,
    )
    r = await apis["tasks"].http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"].lower()


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"exp": int(time.time()) + 100 * 365 * 86400}, "days are accepted"),
        ({"org": None}, "org must be a non-empty id"),
        ({"org": ["jiangmen-riders", "other"]}, "org must be a non-empty id"),
        ({"sub": ""}, "sub must be a non-empty id"),
    ],
    ids=["100-years", "org-null", "org-list", "sub-empty"],
)
async def test_a_validly_signed_token_with_bad_claims_is_401(
    apis: dict[str, Api], services: DevStack, claims: dict[str, object], says: str
) -> None:
    """Signed with the stack's own key, so only the claims can be at fault."""
    token = issue_token(
        services.keys_dir,
        subject="officer-li",
        role="officer",
        org="jiangmen-riders",
        extra_claims=claims,
    )
    r = await apis["tasks"].http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert says in r.json()["detail"]


@pytest.mark.parametrize(
    ("service", "method", "path", "role"),
    [
        ("tasks", "POST", "/v1/jobs", "volunteer"),
        ("tasks", "POST", "/v1/jobs", "merchant"),
        ("tasks", "POST", f"/v1/completions/{uuid.uuid4()}/verify", "app"),
        ("points", "GET", "/v1/accounts/vol-0001/balance", "operator"),
        ("redeem", "POST", "/v1/redemptions", "officer"),
        ("redeem", "POST", "/v1/rewards", "volunteer"),
    ],
)
async def test_a_wrong_role_is_403(
    apis: dict[str, Api], service: str, method: str, path: str, role: str
) -> None:
    api = apis[service]
    r = await api.http.request(method, path, headers=api.auth(role), json={})
    assert r.status_code == 403, r.text
    assert role in r.json()["detail"]


async def test_a_volunteer_sees_only_their_own_balance(apis: dict[str, Api]) -> None:
    points = apis["points"]
    r = await points.http.get(
        "/v1/accounts/vol-someone-else/balance", headers=points.auth("volunteer", "vol-me")
    )
    assert r.status_code == 404


async def test_health_ready_metrics_and_openapi_are_open_on_every_process(
    services: DevStack,
) -> None:
    ports = [
        getattr(services.ports, n)
        for n in ("tasks", "points", "redeem", "tasks_worker", "points_worker", "redeem_worker")
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        for port in ports:
            base = f"http://127.0.0.1:{port}"
            assert (await http.get(f"{base}/healthz")).json()["status"] == "ok"
            ready = await http.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.text
            metrics = await http.get(f"{base}/metrics")
            assert "jifen_http_requests_total" in metrics.text
            spec = (await http.get(f"{base}/openapi.json")).json()
            assert spec["openapi"].startswith("3.")
            assert (await http.get(f"{base}/docs")).status_code == 200
