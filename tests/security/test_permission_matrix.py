"""The permission matrix of docs/SECURITY.md, walked against the running services: every
endpoint of every service (taken from each app's OpenAPI document, so a new endpoint without
a matrix row fails), every role of the owning organisation, every role of another
organisation, and no token at all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.helpers import Api, eventually
from tests.security.matrix import (
    OPEN,
    ROLES,
    endpoints_in_openapi,
    parse_matrix,
    roles_in_code,
)

pytestmark = pytest.mark.e2e

MATRIX = parse_matrix()


def test_every_endpoint_has_a_matrix_row_and_no_row_is_stale() -> None:
    endpoints = endpoints_in_openapi()
    missing = sorted(endpoints - MATRIX.keys())
    stale = sorted(MATRIX.keys() - endpoints)
    assert not missing, f"endpoints without a row in docs/SECURITY.md: {missing}"
    assert not stale, f"rows in docs/SECURITY.md for no endpoint: {stale}"


def test_the_matrix_says_what_the_code_requires() -> None:
    code = roles_in_code()
    for key, row in MATRIX.items():
        if row.path in OPEN:
            assert row.anonymous == "open" and key[2] in OPEN
            continue
        assert row.anonymous in ("401", "credential"), key
        assert row.allowed == code[key], (
            f"{key}: matrix {sorted(row.allowed)}, code {sorted(code[key])}"
        )


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }


class World:
    """Two organisations; everything the matrix needs is created in ``home`` through the APIs."""

    def __init__(self, apis: dict[str, Api]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.apis = apis
        self.home = f"sec-home-{tag}"
        self.other = f"sec-other-{tag}"
        self.volunteer = f"vol-sec-{tag}"
        self.merchant = f"merchant-sec-{tag}"
        self.ids: dict[str, str] = {"account_id": self.volunteer, "month": "2026-11"}
        self.secret_ids: list[str] = []  # must never show up in another organisation's answers

    def subject(self, role: str, org: str) -> str:
        if role == "volunteer":
            return self.volunteer if org == self.home else f"vol-elsewhere-{self.volunteer}"
        if role == "merchant":
            return self.merchant if org == self.home else f"merchant-elsewhere-{self.merchant}"
        return f"{role}-{org}"

    def auth(self, service: str, role: str, org: str, subject: str | None = None) -> dict[str, str]:
        return self.apis[service].auth(role, subject or self.subject(role, org), org)

    async def post(self, service: str, path: str, role: str, body: Any, **h: str) -> Any:
        r = await self.apis[service].http.post(
            path, headers={**self.auth(service, role, self.home), **h}, json=body
        )
        assert r.status_code in (200, 201), f"setup {path}: {r.status_code} {r.text}"
        return r.json()

    async def build(self) -> None:
        t = "tasks"
        community = f"grid-{uuid.uuid4().hex[:6]}"
        await self.post(t, "/v1/communities", "officer", {"id": community, "name": "蓬莱网格"})
        self.ids["community_id"] = community
        await self.post(
            t, f"/v1/communities/{community}/members", "app", {"account_id": self.volunteer}
        )
        job_body = {
            "community_id": community,
            "title": "为独居老人送餐 Meal delivery",
            "category": "meal_delivery",
            "points": 40,
            "capacity": 5,
            **_window(),
        }
        jobs = [await self.post(t, "/v1/jobs", "officer", job_body) for _ in range(2)]
        completions = []
        for job in jobs:
            await self.post(
                t, f"/v1/jobs/{job['id']}/claims", "app", {"account_id": self.volunteer}
            )
            completions.append(
                await self.post(
                    t,
                    f"/v1/jobs/{job['id']}/completions",
                    "app",
                    {"account_id": self.volunteer},
                    **{"Idempotency-Key": f"k-{uuid.uuid4()}"},
                )
            )
        self.ids["job_id"] = jobs[1]["id"]
        checkin = await self.post(t, "/v1/jobs", "officer", {**job_body, "verification": "checkin"})
        series = await self.post(
            t,
            "/v1/jobs",
            "officer",
            {
                **job_body,
                "recurrence": "monthly",
                "starts_at": "2031-01-15T01:00:00Z",
                "ends_at": "2031-01-15T03:00:00Z",
            },
        )
        self.ids["series_id"] = series["series_id"]
        self.ids["checkin_job_id"] = checkin["id"]
        self.ids["completion_id"] = completions[1]["id"]
        await self.post(t, f"/v1/completions/{completions[0]['id']}/verify", "officer", None)
        await self.post(
            t, f"/v1/completions/{completions[1]['id']}/reject", "officer", {"reason": "照片不清楚"}
        )
        appeal = await self.post(
            t,
            "/v1/appeals",
            "volunteer",
            {"completion_id": completions[1]["id"], "kind": "rejection", "reason": "我确实去了"},
        )
        self.ids["appeal_id"] = appeal["id"]
        hazard = await self.post(
            t,
            "/v1/hazards",
            "volunteer",
            {
                "account_id": self.volunteer,
                "community_id": community,
                "kind": "stairwell_clutter",
                "text": "楼道堆放杂物 stairwell blocked",
            },
        )
        self.ids["hazard_id"] = hazard["id"]
        need = await self.post(
            t, "/v1/needs", "officer", {"community_id": community, "kind": "wish", "title": "修门"}
        )
        self.ids["need_id"] = need["id"]
        # the home merchant is also a partner: its members and the jobs it takes are its own
        await self.post(
            t,
            "/v1/partners",
            "officer",
            {"id": self.merchant, "kind": "organisation", "name": "小店"},
        )
        self.ids["partner_id"] = self.merchant

        cred = await self.post(t, "/v1/apps/credentials", "admin", {"app_id": "app-matrix"})
        hook = await self.post(
            t,
            "/v1/webhooks",
            "app",
            {"url": "http://127.0.0.1:9/hook", "event_types": ["jifen.tasks.job.published.v1"]},
        )
        self.ids["webhook_id"] = hook["id"]
        # the volunteer's own help request: its roll is theirs, an officer's and their app's
        help_call = await self.post(
            t,
            "/v1/help-requests",
            "volunteer",
            {"account_id": self.volunteer, "message": "电池没电了 battery flat"},
        )
        self.ids["call_id"] = help_call["id"]
        cert = await self.post(
            t,
            "/v1/certificates",
            "volunteer",
            {"account_id": self.volunteer, "from": "2026-01-01", "until": "2028-01-01"},
        )
        self.ids["code"] = cert["code"]
        self.ids["credential_id"] = cred["id"]
        # the volunteer on the records, and an invitation of them to revoke
        await self.post(
            t,
            "/v1/people",
            "admin",
            {
                "person_id": self.volunteer,
                "phone": "136" + tag_digits(self.volunteer),
                "role": "volunteer",
                "display_name": "矩阵志愿者",
            },
        )
        invitation = await self.post(t, "/v1/invitations", "officer", {"person_id": self.volunteer})
        self.ids["invitation_id"] = invitation["id"]

        r = "redeem"
        await self.post(
            r,
            "/v1/merchants",
            "officer",
            {"id": self.merchant, "name_zh": "小店", "name_en": "Shop"},
        )
        self.ids["merchant_id"] = self.merchant  # its settlement statement (month: 2026-11)
        reward = await self.post(
            r,
            "/v1/rewards",
            "merchant",
            {
                "merchant_id": self.merchant,
                "name_zh": "大米",
                "name_en": "Rice",
                "points": 10,
                "stock": 5,
            },
        )
        self.ids["reward_id"] = reward["id"]
        redeem = self.apis["redeem"]
        vol = self.auth("redeem", "volunteer", self.home)

        async def spendable() -> bool:
            w = await redeem.http.get(f"/v1/wallets/{self.volunteer}", headers=vol)
            return w.status_code == 200 and w.json()["spendable"] >= 10

        await eventually(spendable, what="the credit reaching the wallet")
        redemption = await self.post(
            r,
            "/v1/redemptions",
            "volunteer",
            {"reward_id": reward["id"]},
            **{"Idempotency-Key": f"r-{uuid.uuid4()}"},
        )
        self.ids["redemption_id"] = redemption["id"]

        p = "points"
        adjustment = await self.post(
            p,
            "/v1/adjustments",
            "admin",
            {"account_id": self.volunteer, "amount": 5, "reason": "补记 missed credit"},
        )
        self.ids["adjustment_id"] = adjustment["id"]
        points = self.apis["points"]
        aud = self.auth("points", "auditor", self.home)

        async def entry_in_tree() -> dict[str, Any] | None:
            await points.http.post("/v1/audit/checkpoints", headers=aud)
            h = await points.http.get(f"/v1/audit/accounts/{self.volunteer}/history", headers=aud)
            if h.status_code != 200:
                return None
            body: dict[str, Any] = h.json()
            return body if body.get("items") and body["items"][0]["position"] is not None else None

        history = await eventually(entry_in_tree, what="the credit in a signed checkpoint")
        entry = history["items"][0]
        self.ids["entry_id"] = str(entry["entry"]["entry_id"])
        latest = (await points.http.get("/v1/audit/checkpoints/latest", headers=aud)).json()
        self.ids["tree_size"] = str(latest["tree_size"])
        self.secret_ids = [
            self.ids[k]
            for k in (
                "job_id",
                "completion_id",
                "appeal_id",
                "hazard_id",
                "need_id",
                "reward_id",
                "redemption_id",
                "adjustment_id",
                "credential_id",
                "invitation_id",
            )
        ] + [self.home, self.volunteer, community]


# Path parameters that name another object of the world than the one of that name: the
# check-in code exists only for a job verified by check-in
PATH_IDS: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/v1/jobs/{job_id}/checkin-code"): {"job_id": "checkin_job_id"},
}

# Query strings some reads need to be meaningful (a volunteer lists their own completions).
QUERY: dict[tuple[str, str], str] = {
    ("GET", "/v1/completions"): "?account_id={account_id}",
    ("GET", "/v1/calls"): "?account_id={account_id}",
    ("GET", "/v1/menus/proposals"): "?community_id={community_id}",
    ("GET", "/v1/audit/consistency"): "?first=0&second={tree_size}",
}

# Bodies valid enough to pass validation, sent only to another organisation (where the
# object must not be found): so the answer shows the lookup, not the body check.
CROSS_BODY: dict[tuple[str, str], Any] = {
    ("POST", "/v1/communities/{community_id}/members"): {"account_id": "{account_id}"},
    ("POST", "/v1/jobs/{job_id}/claims"): {"account_id": "{account_id}"},
    ("POST", "/v1/jobs/{job_id}/completions"): {"account_id": "{account_id}"},
    ("POST", "/v1/completions/{completion_id}/approve"): {"reason": "looks right"},
    ("POST", "/v1/completions/{completion_id}/reject"): {"reason": "not done"},
    ("POST", "/v1/completions/{completion_id}/revoke"): {"reason": "was not done"},
    ("POST", "/v1/appeals/{appeal_id}/decisions"): {"outcome": "upheld", "reason": "ok then"},
    ("POST", "/v1/hazards/{hazard_id}/triage"): {
        "job": {
            "title": "清理楼道",
            "category": "hazard_patrol",
            "points": 5,
            "capacity": 1,
            **_window(),
        }
    },
    ("POST", "/v1/hazards/{hazard_id}/merge"): {"duplicate_of": str(uuid.uuid4())},
    ("POST", "/v1/hazards/{hazard_id}/close"): {"reason": "fixed already"},
    ("POST", "/v1/needs/{need_id}/claim"): {"claimed_by": "{subject}"},
    ("POST", "/v1/needs/{need_id}/job"): {
        "job": {"title": "修门", "category": "other", "points": 5, "capacity": 1, **_window()}
    },
    ("POST", "/v1/needs/{need_id}/close"): {"reason": "nobody came"},
    ("POST", "/v1/menus/series/{series_id}/end"): {"reason": "停办 discontinued"},
    ("POST", "/v1/partners/{partner_id}/members"): {"account_id": "{account_id}"},
    ("POST", "/v1/jobs/{job_id}/partner"): {"partner_id": "{partner_id}"},
    ("POST", "/v1/calls/{call_id}/answers"): {"account_id": "{account_id}", "answer": "available"},
    ("POST", "/v1/invitations"): {"person_id": "{account_id}"},
    ("POST", "/v1/certificates"): {
        "account_id": "vol-nobody",  # not the caller's subject: it holds the home volunteer's id
        "from": "2026-01-01",
        "until": "2027-01-01",
    },
    ("PATCH", "/v1/rewards/{reward_id}"): {"stock": 4},
    ("POST", "/v1/redemptions/{redemption_id}/fulfil"): {"voucher_code": "ABCDEFGH"},
    ("POST", "/v1/redemptions/{redemption_id}/cancel"): {"reason": "changed my mind"},
    ("POST", "/v1/adjustments/{adjustment_id}/approve"): {"note": "ok"},
    ("POST", "/v1/adjustments/{adjustment_id}/reject"): {"note": "no"},
}


def tag_digits(seed: str) -> str:
    """Eight digits from ``seed``: a phone number of this run's own."""
    return f"{int(uuid.uuid5(uuid.NAMESPACE_OID, seed)) % 10**8:08d}"


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.fixture(scope="module")
async def world(apis_module: dict[str, Api]) -> World:
    w = World(apis_module)
    await w.build()
    return w


@pytest.fixture(scope="module")
async def apis_module(services: Any) -> Any:
    clients = {s: Api(services, s) for s in ("tasks", "points", "redeem")}
    yield clients
    for c in clients.values():
        await c.close()


async def _call(
    w: World,
    service: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    extra: dict[str, str],
) -> Any:
    ids = {**w.ids, **extra}
    for name, instead in PATH_IDS.get((method, path), {}).items():
        ids[name] = ids[instead]
    url = path.format(**ids) + QUERY.get((method, path), "").format(**ids)
    kwargs: dict[str, Any] = {"headers": headers}
    if method != "GET":
        kwargs["json"] = _fill(body, ids)
        headers["Idempotency-Key"] = f"m-{uuid.uuid4()}"
    return await w.apis[service].http.request(method, url, **kwargs)


@pytest.mark.parametrize("key", sorted(MATRIX), ids=lambda k: f"{k[0]} {k[1]} {k[2]}")
async def test_matrix_row(world: World, key: tuple[str, str, str]) -> None:
    service, method, path = key
    row = MATRIX[key]
    w = world
    problems: list[str] = []

    def expect(ok: bool, who: str, r: Any, want: str) -> None:
        if not ok:
            problems.append(f"{who}: got {r.status_code} ({r.text[:160]}), want {want}")

    r = await _call(w, service, method, path, {}, {}, {})
    if row.anonymous == "credential":  # no bearer token: a credential in the body, or 422
        for role in ROLES:
            t = await _call(w, service, method, path, w.auth(service, role, w.home), {}, {})
            expect(t.status_code == 422, f"{role} without a credential", t, "422")
        expect(r.status_code == 422, "anonymous without a credential", r, "422")
        assert not problems, f"{method} {path} ({service}):\n  " + "\n  ".join(problems)
        return
    if row.anonymous == "open":
        expect(r.status_code == 200, "anonymous", r, "200")
    else:
        expect(r.status_code == 401, "anonymous", r, "401")

    for role in ROLES:
        allowed = role in row.allowed
        # another organisation first: it must never change the home organisation's objects
        sub = w.subject(role, w.other)
        body = CROSS_BODY.get((method, path), {})
        r = await _call(
            w, service, method, path, w.auth(service, role, w.other), body, {"subject": sub}
        )
        who = f"{role} of another organisation"
        if not allowed:
            expect(r.status_code == 403, who, r, "403")
        elif row.cells[role] == "own" and r.status_code == 403:
            pass  # the body or path names the home volunteer, not the caller: refused for that
        elif row.other_org.isdigit():
            expect(r.status_code == int(row.other_org), who, r, row.other_org)
        else:
            expect(r.status_code < 500 and r.status_code not in (401, 403), who, r, "allowed")
        if r.status_code < 300 and row.other_org != "shared":
            leaked = [s for s in w.secret_ids if s in r.text]
            expect(not leaked, who, r, f"nothing of the home organisation (leaked {leaked})")

        # the home organisation: allowed roles pass the gate; reads answer 200
        sub = w.subject(role, w.home)
        r = await _call(
            w, service, method, path, w.auth(service, role, w.home), {}, {"subject": sub}
        )
        who = f"{role} of the organisation"
        if not allowed:
            expect(r.status_code == 403, who, r, "403")
        elif method == "GET":
            expect(r.status_code == 200, who, r, "200")
        else:
            expect(r.status_code < 500 and r.status_code not in (401, 403), who, r, "allowed")

        # "own": the same role, another person of the organisation, sees none of it
        if row.cells[role] == "own":
            other = f"{role}-neighbour-{w.volunteer}"
            r = await _call(
                w,
                service,
                method,
                path,
                w.auth(service, role, w.home, other),
                CROSS_BODY.get((method, path), {}),
                {"subject": other},
            )
            who = f"another {role} of the organisation"
            if r.status_code < 300:
                mine = [w.volunteer, w.ids.get("redemption_id", "-")]
                leaked = [s for s in mine if s in r.text]
                expect(
                    not leaked or method != "GET", who, r, f"none of the owner's records ({leaked})"
                )
            else:
                expect(r.status_code in (403, 404, 409, 422), who, r, "403/404")

    assert not problems, f"{method} {path} ({service}):\n  " + "\n  ".join(problems)
