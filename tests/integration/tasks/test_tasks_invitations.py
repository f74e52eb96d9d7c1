"""Invitation links, through the real tasks API: an officer invites a person on the records, the
community app exchanges the token once for the sessions the records give (docs/SECURITY.md,
"Invitation links"). And the attacks: a volunteer (or any role but officer and admin) cannot
issue; another organisation's officer cannot invite this organisation's person; a spent,
expired, revoked or guessed token is refused with a 4xx saying which; a token of one
organisation is refused to another organisation's app; an invitation never carries a role
beyond its issuer's (officers invite volunteers and merchants, admins also officers)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg
import jwt
import pytest

from jifen.devtools.devstack import DevStack
from tests.helpers import Api

pytestmark = pytest.mark.e2e


def _phone() -> str:
    return "135" + "".join(secrets.choice("0123456789") for _ in range(8))


async def _record(tasks: Api, role: str, phone: str, person: str | None = None) -> str:
    person = person or f"{role}-inv-{uuid.uuid4().hex[:6]}"
    r = await tasks.http.post(
        "/v1/people",
        headers=tasks.auth("admin"),
        json={"person_id": person, "phone": phone, "role": role, "display_name": "邀请测试"},
    )
    assert r.status_code == 201, r.text
    return person


async def _invite(tasks: Api, role: str = "officer", org: str | None = None, **body: str) -> Any:
    return await tasks.http.post("/v1/invitations", headers=tasks.auth(role, org=org), json=body)


async def _exchange(tasks: Api, token: str, org: str | None = None, lang: str = "en") -> Any:
    return await tasks.http.post(
        "/v1/signin/invitations",
        headers={**tasks.auth("app", org=org), "Accept-Language": lang},
        json={"token": token},
    )


async def test_an_invited_person_signs_in_once_with_the_roles_on_record(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    phone = _phone()
    vol = await _record(tasks, "volunteer", phone)
    shop = await _record(tasks, "merchant", phone)
    r = await _invite(tasks, phone=f"{phone[:3]} {phone[3:7]}-{phone[7:]}")
    assert r.status_code == 201, r.text
    issued = r.json()
    token = issued["token"]
    assert len(token) >= 40 and issued["expires_in"] == 7 * 24 * 3600
    assert issued["roles"] == ["merchant", "volunteer"]
    assert phone not in r.text and issued["phone"] == f"{phone[:3]}****{phone[-4:]}"
    # the list shows it, never its token
    listed = await tasks.http.get("/v1/invitations", headers=tasks.auth("officer"))
    assert listed.status_code == 200, listed.text
    mine = [i for i in listed.json()["items"] if i["id"] == issued["id"]]
    assert mine and mine[0]["used_at"] is None and token not in listed.text

    r = await _exchange(tasks, token)
    assert r.status_code == 200, r.text
    sessions = {s["role"]: s for s in r.json()["sessions"]}
    assert {k: v["person_id"] for k, v in sessions.items()} == {"volunteer": vol, "merchant": shop}
    claims = jwt.decode(sessions["volunteer"]["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["org"]) == (vol, "volunteer", tasks.org)
    own = {"Authorization": f"Bearer {sessions['volunteer']['access_token']}"}
    got = await tasks.http.get(f"/v1/completions?account_id={vol}", headers=own)
    assert got.status_code == 200, got.text

    # the number learns its link was used, and by whose invitation (here: the embedded sender)
    sent = await tasks.http.get("/v1/signin/messages", headers=tasks.auth("operator"))
    texts = [m["body"] for m in sent.json()["items"] if m["recipient"] == phone]
    assert len(texts) == 1 and "邀请链接" in texts[0] and "invitation link from" in texts[0]
    assert token not in texts[0]

    # used once: the second exchange is refused, in the caller's language
    again = await _exchange(tasks, token, lang="zh-CN")
    assert again.status_code == 410 and again.json()["reason"] == "invitation_used", again.text
    assert "已经用过" in again.json()["detail"]
    listed = await tasks.http.get("/v1/invitations", headers=tasks.auth("admin"))
    assert [i["used_at"] for i in listed.json()["items"] if i["id"] == issued["id"]] != [None]


async def test_an_expired_token_is_refused(apis: dict[str, Api], services: DevStack) -> None:
    tasks = apis["tasks"]
    person = await _record(tasks, "volunteer", _phone())
    r = await _invite(tasks, person_id=person)
    assert r.status_code == 201, r.text
    conn = await asyncpg.connect(services.owner_dsn("tasks"))
    try:  # a week has passed
        await conn.execute(
            "UPDATE invitation SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(r.json()["id"]),
        )
    finally:
        await conn.close()
    refused = await _exchange(tasks, r.json()["token"])
    assert refused.status_code == 410, refused.text
    assert refused.json()["reason"] == "invitation_expired"
    assert "expired" in refused.json()["detail"]


async def test_a_revoked_token_is_refused_and_a_used_one_cannot_be_revoked(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    person = await _record(tasks, "volunteer", _phone())
    first, second = [(await _invite(tasks, person_id=person)).json() for _ in range(2)]
    r = await tasks.http.post(
        f"/v1/invitations/{first['id']}/revoke", headers=tasks.auth("officer")
    )
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    refused = await _exchange(tasks, first["token"])
    assert refused.status_code == 410, refused.text
    assert refused.json()["reason"] == "invitation_revoked"
    # the other link still works, once; then there is nothing to revoke
    assert (await _exchange(tasks, second["token"])).status_code == 200
    r = await tasks.http.post(f"/v1/invitations/{second['id']}/revoke", headers=tasks.auth("admin"))
    assert r.status_code == 409 and r.json()["reason"] == "invitation_used", r.text
    # another organisation's officer cannot revoke (or see) this organisation's invitation
    other = f"inv-other-{uuid.uuid4().hex[:6]}"
    r = await tasks.http.post(
        f"/v1/invitations/{first['id']}/revoke", headers=tasks.auth("officer", org=other)
    )
    assert r.status_code == 404, r.text
    listed = await tasks.http.get("/v1/invitations", headers=tasks.auth("officer", org=other))
    assert first["id"] not in listed.text


async def test_only_officers_and_admins_issue_and_only_for_their_own_records(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    phone = _phone()
    person = await _record(tasks, "volunteer", phone)
    for role in ("volunteer", "app", "merchant", "auditor", "operator"):
        r = await _invite(tasks, role, person_id=person)
        assert r.status_code == 403, (role, r.text)
    # another organisation's officer: this organisation's person is not on their records
    other = f"inv-other-{uuid.uuid4().hex[:6]}"
    for body in ({"person_id": person}, {"phone": phone}):
        r = await _invite(tasks, "officer", org=other, **body)
        assert r.status_code == 404, (body, r.text)
    # an unknown person, and a body naming a role or neither field, are refused
    assert (await _invite(tasks, person_id="nobody-on-record")).status_code == 404
    r = await tasks.http.post(
        "/v1/invitations",
        headers=tasks.auth("officer"),
        json={"person_id": person, "role": "admin"},
    )
    assert r.status_code == 422, r.text
    assert (await _invite(tasks)).status_code == 422
    assert (await _invite(tasks, person_id=person, phone=phone)).status_code == 422


async def test_a_guessed_or_foreign_token_signs_nobody_in(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    person = await _record(tasks, "volunteer", _phone())
    token = (await _invite(tasks, person_id=person)).json()["token"]
    guessed = await _exchange(tasks, secrets.token_urlsafe(32))
    assert guessed.status_code == 401, guessed.text
    assert guessed.json()["reason"] == "invitation_unknown"
    assert "not valid" in guessed.json()["detail"]
    other = f"inv-other-{uuid.uuid4().hex[:6]}"
    foreign = await _exchange(tasks, token, org=other)
    assert foreign.status_code == 401 and foreign.json()["reason"] == "invitation_unknown"
    assert "access_token" not in foreign.text
    # people's tokens cannot exchange at all; the home app still can, once
    for role in ("volunteer", "officer", "admin"):
        r = await tasks.http.post(
            "/v1/signin/invitations", headers=tasks.auth(role), json={"token": token}
        )
        assert r.status_code == 403, (role, r.text)
    assert (await _exchange(tasks, token)).status_code == 200


async def test_an_invitation_never_carries_more_than_its_issuer_may_hand_out(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    officer_phone, admin_phone, auditor_phone = _phone(), _phone(), _phone()
    officer = await _record(tasks, "officer", officer_phone)
    await _record(tasks, "admin", admin_phone)
    await _record(tasks, "auditor", auditor_phone)
    # an officer cannot invite an officer, an admin or an auditor
    for phone in (officer_phone, admin_phone, auditor_phone):
        r = await _invite(tasks, "officer", phone=phone)
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == "invitation_beyond_issuer"
    # an admin invites an officer, but no admin and no auditor
    assert (await _invite(tasks, "admin", person_id=officer)).status_code == 201
    for phone in (admin_phone, auditor_phone):
        r = await _invite(tasks, "admin", phone=phone)
        assert r.status_code == 403 and r.json()["reason"] == "invitation_beyond_issuer", r.text
    # the ceiling holds at the exchange too: the volunteer became an admin meanwhile
    phone = _phone()
    vol = await _record(tasks, "volunteer", phone)
    token = (await _invite(tasks, "officer", person_id=vol)).json()["token"]
    await _record(tasks, "admin", phone, person=f"adm-{vol}")
    r = await _exchange(tasks, token)
    assert r.status_code == 403 and r.json()["reason"] == "invitation_beyond_issuer", r.text
    assert "access_token" not in r.text


async def test_the_list_pages_one_at_a_time_to_what_one_page_gives(
    services: DevStack,
) -> None:
    org = f"inv-list-{uuid.uuid4().hex[:6]}"
    tasks = Api(services, "tasks", org=org)
    try:
        person = await _record(tasks, "volunteer", _phone())
        made = [(await _invite(tasks, person_id=person)).json()["id"] for _ in range(3)]
        whole = await tasks.http.get(
            "/v1/invitations", headers=tasks.auth("officer"), params={"limit": 1000}
        )
        want = [i["id"] for i in whole.json()["items"]]
        assert want == made[::-1]  # newest first
        got, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            r = await tasks.http.get(
                "/v1/invitations", headers=tasks.auth("officer"), params=params
            )
            assert r.status_code == 200, r.text
            got += [i["id"] for i in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if not cursor:
                break
        assert got == want
    finally:
        await tasks.close()
