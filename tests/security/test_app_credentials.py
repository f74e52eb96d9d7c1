"""Community app credentials through the real services: an admin issues one per app, the
database holds only its hash, the app exchanges it for a short-lived token that works on
every service, flooding one app's credential gets 429 with Retry-After while another app is
unaffected, a revoked credential buys no new token, and guessing credentials gets the guesser
429 after ten failures."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from tests.helpers import Api

from jifen.devtools.devstack import DevStack
from jifen.tasks.domain.credentials import EXCHANGE_MAX_FAILURES, EXCHANGE_WINDOW_SECONDS

pytestmark = pytest.mark.e2e


async def issue(tasks: Api, org: str, app_id: str, per_minute: int) -> dict[str, Any]:
    r = await tasks.http.post(
        "/v1/apps/credentials",
        headers=tasks.auth("admin", org=org),
        json={"app_id": app_id, "writes_per_minute": per_minute},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def exchange(tasks: Api, secret: str) -> Any:
    return await tasks.http.post("/v1/apps/token", json={"credential": secret})


async def test_issue_store_hash_only_exchange_and_use_everywhere(
    apis: dict[str, Api], services: DevStack
) -> None:
    tasks = apis["tasks"]
    org = f"cred-{uuid.uuid4().hex[:6]}"
    cred = await issue(tasks, org, "app-zhongbao", 600)
    secret = cred["secret"]
    assert secret.startswith("jfa_") and len(secret) >= 40

    conn = await asyncpg.connect(services.owner_dsn("tasks"))
    try:
        row = await conn.fetchrow(
            "SELECT * FROM app_credential WHERE id = $1", uuid.UUID(cred["id"])
        )
    finally:
        await conn.close()
    assert bytes(row["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in repr(dict(row)) and secret[4:] not in repr(dict(row))

    listed = await tasks.http.get("/v1/apps/credentials", headers=tasks.auth("admin", org=org))
    assert [c["id"] for c in listed.json()["items"]] == [cred["id"]]
    assert secret not in listed.text

    r = await exchange(tasks, secret)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["expires_in"] <= 15 * 60 and token["app_id"] == "app-zhongbao"
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    # the token is an app of that organisation on every service
    r = await tasks.http.get("/v1/jobs", headers=bearer)
    assert r.status_code == 200, r.text
    r = await apis["redeem"].http.get("/v1/rewards", headers=bearer)
    assert r.status_code == 200, r.text
    r = await tasks.http.get("/v1/apps/credentials", headers=bearer)
    assert r.status_code == 403  # an app cannot manage credentials

    # another organisation's admin cannot see or revoke it
    other = tasks.auth("admin", org=f"{org}-other")
    assert (await tasks.http.get("/v1/apps/credentials", headers=other)).json()["items"] == []
    r = await tasks.http.post(f"/v1/apps/credentials/{cred['id']}/revoke", headers=other)
    assert r.status_code == 404

    r = await tasks.http.post(
        f"/v1/apps/credentials/{cred['id']}/revoke", headers=tasks.auth("admin", org=org)
    )
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    again = await tasks.http.post(
        f"/v1/apps/credentials/{cred['id']}/revoke", headers=tasks.auth("admin", org=org)
    )
    assert again.status_code == 409 and again.json()["reason"] == "already_revoked"
    r = await exchange(tasks, secret)
    assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]
    r = await exchange(tasks, "jfa_" + "A" * 43)
    assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]


async def test_flooding_one_app_gets_429_while_another_app_is_unaffected(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = f"flood-{uuid.uuid4().hex[:6]}"
    # 6 writes a minute: a burst of one, then one every ten seconds (30 requests take far
    # less than the minutes that would need); the quiet app has plenty
    noisy = await issue(tasks, org, "app-noisy", 6)
    quiet = await issue(tasks, org, "app-quiet", 600)
    noisy_h = {
        "Authorization": f"Bearer {(await exchange(tasks, noisy['secret'])).json()['access_token']}"
    }
    quiet_h = {
        "Authorization": f"Bearer {(await exchange(tasks, quiet['secret'])).json()['access_token']}"
    }

    async def hazard(headers: dict[str, str]) -> Any:
        # a write every app may make; an unknown community makes it a cheap refusal
        return await tasks.http.post(
            "/v1/hazards",
            headers=headers,
            json={
                "account_id": "vol-flood",
                "community_id": "no-such-grid",
                "kind": "fire_risk",
                "text": "电动车在楼道充电",
            },
        )

    statuses = [(await hazard(noisy_h)).status_code for _ in range(30)]
    limited = [s for s in statuses if s == 429]
    assert statuses[0] != 429, statuses  # the burst itself passes
    assert len(limited) >= 20, statuses
    r = await hazard(noisy_h)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "writes a minute" in r.json()["detail"]
    # reads are not limited
    assert (await tasks.http.get("/v1/jobs", headers=noisy_h)).status_code == 200

    quiet_statuses = [(await hazard(quiet_h)).status_code for _ in range(5)]
    assert 429 not in quiet_statuses, quiet_statuses
    # and people of the organisation (tokens without an app credential) are not held back
    r = await hazard(tasks.auth("volunteer", "vol-flood", org=org))
    assert r.status_code != 429


async def test_guessing_credentials_gets_429_for_that_client_only(apis: dict[str, Api]) -> None:
    """After ten failed exchanges within five minutes, a client waits (429 with Retry-After),
    even with a right secret; another client is unaffected. The guesser here connects from
    another loopback address, so the rest of the session's clients are not held back."""
    tasks = apis["tasks"]
    org = f"guess-{uuid.uuid4().hex[:6]}"
    cred = await issue(tasks, org, "app-guessed", 600)
    guesser_address = f"127.{uuid.uuid4().int % 200 + 20}.0.{uuid.uuid4().int % 200 + 20}"
    transport = httpx.AsyncHTTPTransport(local_address=guesser_address)
    async with httpx.AsyncClient(base_url=tasks.base, transport=transport, timeout=20) as guesser:
        statuses = []
        for i in range(EXCHANGE_MAX_FAILURES):
            r = await guesser.post("/v1/apps/token", json={"credential": f"jfa_guess{i:04d}x"})
            statuses.append(r.status_code)
        assert statuses == [401] * EXCHANGE_MAX_FAILURES
        r = await guesser.post("/v1/apps/token", json={"credential": "jfa_guess-next"})
        assert r.status_code == 429, r.text
        assert r.json()["reason"] == "too_many_attempts"
        assert 1 <= int(r.headers["Retry-After"]) <= EXCHANGE_WINDOW_SECONDS
        assert r.headers["content-type"].startswith("application/problem+json")
        # the right secret from the guessing client waits too: no token while locked out
        r = await guesser.post("/v1/apps/token", json={"credential": cred["secret"]})
        assert r.status_code == 429 and "access_token" not in r.text
    # the app itself, from its own address, is not held back by someone else's guessing
    r = await exchange(tasks, cred["secret"])
    assert r.status_code == 200, r.text
