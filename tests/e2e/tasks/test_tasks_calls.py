"""Calling volunteers (issue 21, part 5), through the real processes: an officer mobilises a
community, each volunteer with a phone on record is told through the sender, they answer, the
officer reads the roll-call as it fills; a volunteer asks the others of their communities for
help, once in ten minutes; who may call, answer and read, tested with the attacks beside."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.helpers import Api, ensure_community, register

pytestmark = pytest.mark.e2e


async def _people(tasks: Api, org: str, community: str, n: int) -> list[tuple[str, str]]:
    """``n`` volunteers registered with the community, each with a phone on record."""
    await ensure_community(tasks, community, org=org)
    made = []
    for i in range(n):
        account = f"vol-{uuid.uuid4().hex[:8]}"
        phone = f"139{uuid.uuid4().int % 10**8:08d}"
        await register(tasks, account, community, org=org)
        r = await tasks.http.post(
            "/v1/people",
            headers=tasks.auth("admin", org=org),
            json={
                "person_id": account,
                "phone": phone,
                "role": "volunteer",
                "display_name": f"骑手{i}",
            },
        )
        assert r.status_code == 201, r.text
        made.append((account, phone))
    return made


async def _messages(tasks: Api, org: str) -> list[dict[str, Any]]:
    r = await tasks.http.get("/v1/signin/messages", headers=tasks.auth("operator", org=org))
    assert r.status_code == 200, r.text
    got: list[dict[str, Any]] = r.json()["items"]
    return got


async def test_an_officer_mobilises_a_community_and_reads_the_roll_call_fill(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = f"org-{uuid.uuid4().hex[:8]}"
    people = await _people(tasks, org, "grid-a", 3)
    no_phone = f"vol-{uuid.uuid4().hex[:8]}"
    await register(tasks, no_phone, "grid-a", org=org)
    elsewhere = await _people(tasks, org, "grid-b", 1)
    officer = tasks.auth("officer", org=org)
    r = await tasks.http.post(
        "/v1/mobilisations",
        headers=officer,
        json={"community_id": "grid-a", "message": "台风过境，急需人手 Typhoon: hands needed"},
    )
    assert r.status_code == 201, r.text
    call = r.json()
    assert call["kind"] == "mobilisation"
    assert call["counts"] == {
        "recipients": 4, "notified": 3, "available": 0, "unavailable": 0, "no_answer": 4
    }  # fmt: skip
    sent = {m["recipient"]: m["body"] for m in await _messages(tasks, org)}
    for _, phone in people:
        assert "紧急召集" in sent[phone] and "台风过境" in sent[phone]
    assert elsewhere[0][1] not in sent  # another community's volunteer is not called

    app = tasks.auth("app", org=org)
    url = f"/v1/calls/{call['id']}/answers"
    for (account, _), answer in zip(people, ("available", "unavailable"), strict=False):
        r = await tasks.http.post(url, headers=app, json={"account_id": account, "answer": answer})
        assert r.status_code == 200, r.text
    # the volunteer themself changes their mind: the latest answer counts
    me = people[1][0]
    r = await tasks.http.post(
        url,
        headers=tasks.auth("volunteer", me, org=org),
        json={"account_id": me, "answer": "available", "note": "10 分钟到 there in 10"},
    )
    assert r.status_code == 200, r.text
    roll = (await tasks.http.get(f"/v1/calls/{call['id']}", headers=officer)).json()
    assert roll["counts"]["available"] == 2 and roll["counts"]["no_answer"] == 2
    assert [e["account_id"] for e in roll["roll"][:2]] == [people[0][0], me]  # first answers first
    # the open calls an account sees, with its answer so far
    mine = await tasks.http.get("/v1/calls", headers=app, params={"account_id": people[2][0]})
    assert [(c["id"], c["answer"]) for c in mine.json()["items"]] == [(call["id"], None)]

    # attacks: another community's volunteer, a volunteer for another, another organisation
    r = await tasks.http.post(
        url, headers=app, json={"account_id": elsewhere[0][0], "answer": "available"}
    )
    assert r.status_code == 404, r.text
    r = await tasks.http.post(
        url,
        headers=tasks.auth("volunteer", people[2][0], org=org),
        json={"account_id": people[0][0], "answer": "unavailable"},
    )
    assert r.status_code == 403, r.text
    other = f"org-{uuid.uuid4().hex[:8]}"
    r = await tasks.http.get(f"/v1/calls/{call['id']}", headers=tasks.auth("officer", org=other))
    assert r.status_code == 404, r.text
    r = await tasks.http.get(
        f"/v1/calls/{call['id']}", headers=tasks.auth("volunteer", me, org=org)
    )
    assert r.status_code == 404, r.text  # a mobilisation's roll is the officers'
    for role in ("volunteer", "app", "merchant", "auditor"):
        r = await tasks.http.post(
            "/v1/mobilisations",
            headers=tasks.auth(role, org=org),
            json={"community_id": "grid-a", "message": "假召集 fake"},
        )
        assert r.status_code == 403, (role, r.text)


async def test_a_volunteer_asks_their_communities_for_help_once_in_ten_minutes(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = f"org-{uuid.uuid4().hex[:8]}"
    (rider, _), (near, near_phone) = await _people(tasks, org, "grid-a", 2)
    ((far, far_phone),) = await _people(tasks, org, "grid-b", 1)
    me = tasks.auth("volunteer", rider, org=org)
    body = {"account_id": rider, "message": "电池没电了，在蓬莱路口 Battery flat at Penglai Rd"}
    r = await tasks.http.post("/v1/help-requests", headers=me, json=body)
    assert r.status_code == 201, r.text
    call = r.json()
    assert (call["kind"], call["created_by"], call["counts"]["recipients"]) == ("help", rider, 1)
    sent = {m["recipient"]: m["body"] for m in await _messages(tasks, org)}
    assert "请求支援" in sent[near_phone] and far_phone not in sent
    r = await tasks.http.post(
        f"/v1/calls/{call['id']}/answers",
        headers=tasks.auth("volunteer", near, org=org),
        json={"account_id": near, "answer": "available"},
    )
    assert r.status_code == 200, r.text
    roll = await tasks.http.get(f"/v1/calls/{call['id']}", headers=me)  # the requester reads it
    assert roll.status_code == 200 and roll.json()["counts"]["available"] == 1
    # once in ten minutes; nobody asks in another's name
    again = await tasks.http.post(
        "/v1/help-requests", headers={**me, "Accept-Language": "zh-CN"}, json=body
    )
    assert again.status_code == 429 and again.json()["reason"] == "help_too_soon", again.text
    assert int(again.headers["retry-after"]) > 0 and "求助过于频繁" in again.json()["detail"]
    r = await tasks.http.post(
        "/v1/help-requests", headers=tasks.auth("volunteer", near, org=org), json=body
    )
    assert r.status_code == 403, r.text
    r = await tasks.http.get(
        f"/v1/calls/{call['id']}", headers=tasks.auth("volunteer", far, org=org)
    )
    assert r.status_code == 404, r.text


async def test_a_call_retried_with_its_key_is_the_same_call_and_tells_no_one_twice(
    apis: dict[str, Api],
) -> None:
    tasks = apis["tasks"]
    org = f"org-{uuid.uuid4().hex[:8]}"
    people = await _people(tasks, org, "grid-k", 2)
    officer = {**tasks.auth("officer", "officer-li", org=org), "Idempotency-Key": "typhoon-1202"}
    body = {"community_id": "grid-k", "message": "台风过境，急需人手 Typhoon: hands needed"}
    first = await tasks.http.post("/v1/mobilisations", headers=officer, json=body)
    assert first.status_code == 201, first.text
    again = await tasks.http.post("/v1/mobilisations", headers=officer, json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
    assert len(await _messages(tasks, org)) == 2  # each volunteer told once
    # the key names that call: another message under it is refused, not sent
    r = await tasks.http.post(
        "/v1/mobilisations", headers=officer, json={**body, "message": "另一件事 something else"}
    )
    assert r.status_code == 409 and r.json()["reason"] == "idempotency_key_reused", r.text
    # keys are each caller's own: another officer's same key is another call
    r = await tasks.http.post(
        "/v1/mobilisations",
        headers={
            **tasks.auth("officer", "officer-wang", org=org),
            "Idempotency-Key": "typhoon-1202",
        },
        json=body,
    )
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"], r.text
    # a help request retried with its key is the same request, not a 429
    app = {**tasks.auth("app", org=org), "Idempotency-Key": "help-vol-0001"}
    ask = {"account_id": people[0][0], "message": "电池没电了 battery flat"}
    r1 = await tasks.http.post("/v1/help-requests", headers=app, json=ask)
    r2 = await tasks.http.post("/v1/help-requests", headers=app, json=ask)
    assert (r1.status_code, r2.status_code) == (201, 200) and r1.json()["id"] == r2.json()["id"]
    assert len(await _messages(tasks, org)) == 4 + 1  # two calls of two, and one help request
