"""Signing in with a phone code, through the real tasks API: the legitimate path and the attacks
(docs/SECURITY.md, "Signing in with a phone number"). The role comes from the organisation's
records; the code reaches only the phone (here: the embedded sender's outbox, which only an
operator reads); a code is single-use, short-lived and void after five wrong tries; a number
not on record gets the same answer and no code; another organisation's app signs nobody in."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import jwt
import pytest
from tests.helpers import Api

pytestmark = pytest.mark.e2e


def _phone() -> str:
    return "137" + "".join(secrets.choice("0123456789") for _ in range(8))


async def _person(tasks: Api, role: str, org: str | None = None) -> tuple[str, str]:
    person, phone = f"{role}-si-{uuid.uuid4().hex[:6]}", _phone()
    r = await tasks.http.post(
        "/v1/people",
        headers=tasks.auth("admin", org=org),
        json={"person_id": person, "phone": phone, "role": role, "display_name": "测试"},
    )
    assert r.status_code == 201, r.text
    return person, phone


async def _code_for(tasks: Api, phone: str, org: str | None = None) -> str | None:
    """The latest code the embedded sender kept for ``phone``, as the operator's page shows it."""
    r = await tasks.http.get("/v1/signin/messages", headers=tasks.auth("operator", org=org))
    assert r.status_code == 200, r.text
    for m in r.json()["items"]:
        if m["recipient"] == phone:
            found = re.search(r"\b(\d{6})\b", m["body"])
            return found.group(1) if found else None
    return None


async def _ask(tasks: Api, phone: str, org: str | None = None) -> Any:
    return await tasks.http.post(
        "/v1/signin/codes", headers=tasks.auth("app", org=org), json={"phone": phone}
    )


async def _sign_in(tasks: Api, phone: str, code: str, org: str | None = None) -> Any:
    return await tasks.http.post(
        "/v1/signin/tokens", headers=tasks.auth("app", org=org), json={"phone": phone, "code": code}
    )


async def test_a_person_signs_in_with_the_code_sent_to_their_phone_and_gets_the_recorded_roles(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    person, phone = await _person(tasks, "officer")
    # the same number also holds a volunteer's role: one sign-in, both tokens
    r = await tasks.http.post(
        "/v1/people",
        headers=tasks.auth("admin"),
        json={"person_id": f"vol-{person}", "phone": phone, "role": "volunteer"},
    )
    assert r.status_code == 201, r.text
    sent = await _ask(tasks, f"{phone[:3]} {phone[3:7]}-{phone[7:]}")  # typed with separators
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert phone not in sent.text and body["sent_to"] == f"{phone[:3]}****{phone[-4:]}"
    assert not re.search(r"\b\d{6}\b", sent.text), "the app must never see the code"
    code = await _code_for(tasks, phone)
    assert code is not None
    r = await _sign_in(tasks, phone, code)
    assert r.status_code == 200, r.text
    sessions = {s["role"]: s for s in r.json()["sessions"]}
    assert set(sessions) == {"officer", "volunteer"}
    claims = jwt.decode(sessions["officer"]["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["org"]) == (person, "officer", tasks.org)
    # the token works on the API as that person, in that role
    officer = {"Authorization": f"Bearer {sessions['officer']['access_token']}"}
    assert (await tasks.http.get("/v1/completions", headers=officer)).status_code == 200
    # used once
    again = await _sign_in(tasks, phone, code)
    assert again.status_code == 401 and again.json()["reason"] == "no_live_code", again.text


async def test_wrong_codes_count_down_and_the_fifth_voids_the_code(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    _, phone = await _person(tasks, "volunteer")
    assert (await _ask(tasks, phone)).status_code == 202
    code = await _code_for(tasks, phone)
    assert code is not None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    lefts = []
    for _ in range(5):
        r = await _sign_in(tasks, phone, wrong)
        assert r.status_code == 401, r.text
        lefts.append(r.json()["attempts_left"])
    assert lefts == [4, 3, 2, 1, 0]
    r = await _sign_in(tasks, phone, code)  # the right code, too late
    assert r.status_code == 401 and r.json()["reason"] == "no_live_code", r.text


async def test_a_number_not_on_record_gets_the_same_answer_and_no_code(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    _, known = await _person(tasks, "volunteer")
    unknown = _phone()
    a, b = await _ask(tasks, known), await _ask(tasks, unknown)
    assert a.status_code == b.status_code == 202
    assert set(a.json()) == set(b.json())
    assert await _code_for(tasks, unknown) is None
    # guessing gets the same refusal as a wrong code for a known number
    r = await _sign_in(tasks, unknown, "000000")
    assert r.status_code == 401 and r.json()["reason"] == "wrong_code", r.text
    # and asking again at once is throttled for both alike
    a, b = await _ask(tasks, known), await _ask(tasks, unknown)
    assert a.status_code == b.status_code == 429
    assert a.headers["Retry-After"] and b.headers["Retry-After"]


async def test_another_organisations_app_signs_nobody_in(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    _, phone = await _person(tasks, "admin")
    other = f"si-other-{uuid.uuid4().hex[:6]}"
    assert (await _ask(tasks, phone, org=other)).status_code == 202
    assert await _code_for(tasks, phone, org=other) is None  # not on that organisation's records
    assert await _code_for(tasks, phone) is None
    assert (await _ask(tasks, phone)).status_code == 202
    code = await _code_for(tasks, phone)
    assert code is not None
    # the home organisation's code, presented by another organisation's app
    r = await _sign_in(tasks, phone, code, org=other)
    assert r.status_code == 401, r.text
    assert (await _sign_in(tasks, phone, code)).status_code == 200


async def test_only_apps_sign_in_and_only_operators_read_the_outbox(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    _, phone = await _person(tasks, "volunteer")
    for role in ("volunteer", "officer", "admin", "merchant", "auditor", "operator"):
        r = await tasks.http.post(
            "/v1/signin/codes", headers=tasks.auth(role), json={"phone": phone}
        )
        assert r.status_code == 403, (role, r.text)
        r = await tasks.http.post(
            "/v1/signin/tokens", headers=tasks.auth(role), json={"phone": phone, "code": "123456"}
        )
        assert r.status_code == 403, (role, r.text)
    for role in ("volunteer", "officer", "admin", "app", "auditor"):
        r = await tasks.http.get("/v1/signin/messages", headers=tasks.auth(role))
        assert r.status_code == 403, (role, r.text)


async def test_a_role_is_recorded_only_by_an_admin_and_not_twice(apis: dict[str, Api]) -> None:
    tasks = apis["tasks"]
    body = {"person_id": f"vol-si-{uuid.uuid4().hex[:6]}", "phone": _phone(), "role": "admin"}
    for role in ("volunteer", "officer", "app", "merchant", "auditor", "operator"):
        r = await tasks.http.post("/v1/people", headers=tasks.auth(role), json=body)
        assert r.status_code == 403, (role, r.text)
    r = await tasks.http.post("/v1/people", headers=tasks.auth("admin"), json=body)
    assert r.status_code == 201, r.text
    r = await tasks.http.post(
        "/v1/people",
        headers={**tasks.auth("admin"), "Accept-Language": "zh-CN"},
        json={**body, "person_id": "someone-else"},
    )
    assert r.status_code == 409 and r.json()["reason"] == "person_exists", r.text
    assert "已有角色" in r.json()["detail"]
    bad = await tasks.http.post(
        "/v1/people", headers=tasks.auth("admin"), json={**body, "phone": "call me"}
    )
    assert bad.status_code == 422 and "body.phone" in bad.json()["detail"], bad.text
    ops = await tasks.http.post(
        "/v1/people", headers=tasks.auth("admin"), json={**body, "role": "operator"}
    )
    assert ops.status_code == 422, ops.text  # operators and apps are no people of the records


async def test_a_code_signs_in_only_its_own_number_and_no_one_chooses_a_role(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    mine, my_phone = await _person(tasks, "volunteer")
    _, admins_phone = await _person(tasks, "admin")
    assert (await _ask(tasks, my_phone)).status_code == 202
    assert (await _ask(tasks, admins_phone)).status_code == 202
    code = await _code_for(tasks, my_phone)
    assert code is not None
    # my code presented for the admin's number: refused, and it costs the admin's code a try
    r = await _sign_in(tasks, admins_phone, code)
    assert r.status_code == 401 and r.json()["reason"] == "wrong_code", r.text
    # asking for a role in the exchange is not part of it
    r = await tasks.http.post(
        "/v1/signin/tokens",
        headers=tasks.auth("app"),
        json={"phone": my_phone, "code": code, "role": "admin"},
    )
    assert r.status_code == 422, r.text
    # the legitimate exchange beside it: my own number, my own role only
    r = await _sign_in(tasks, my_phone, code)
    assert r.status_code == 200, r.text
    assert [(s["role"], s["person_id"]) for s in r.json()["sessions"]] == [("volunteer", mine)]
